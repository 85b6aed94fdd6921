use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = parley::cli::Cli::parse();
    match parley::cli::run(cli) {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
