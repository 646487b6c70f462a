//! `flowscope`: the server and its command line (`flowscope::cli`).

fn main() -> std::process::ExitCode {
    flowscope::cli::main()
}
