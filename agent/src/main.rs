fn main() -> std::process::ExitCode {
    vr_agent::cli::main()
}
