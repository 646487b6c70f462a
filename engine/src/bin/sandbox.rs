//! The jq sandbox's child process on its own (see `engine::agents::sandbox`): the engine's
//! tests start this; the `flowscope` binary answers `flowscope sandbox` with the same code.

fn main() -> std::process::ExitCode {
    engine::agents::sandbox::child_main()
}
