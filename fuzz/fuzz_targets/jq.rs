//! Any text as a jq program: compiling it answers a program or an error naming the place,
//! never a panic, on a stack the size of the sandbox child's (64 MiB), where it is compiled.
//! Evaluation is not fuzzed here: it is unbounded by design (`def f: [f]; f`, `repeat(1)`)
//! and runs only in the sandbox's child, whose limits the hostile tests prove.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(program) = std::str::from_utf8(data) else {
        return;
    };
    let program = program.to_string();
    let compiled = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || engine::agents::jq::compile(&program).map(|_| ()))
        .expect("thread")
        .join()
        .expect("compile panicked");
    if let Err(message) = compiled {
        assert!(!message.is_empty());
    }
});
