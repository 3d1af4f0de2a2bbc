//! The `chat-server` binary: parse flags, set up logging, raise the open-files limit, bind, serve
//! until SIGINT/SIGTERM.

use std::process::ExitCode;

use chat_server::cli::{Args, LogFormat};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Every connection is a file descriptor, and the usual soft limit (1024) is far below
/// `--max-connections`: raise it to the hard limit, which only root can raise further. The log
/// line says what we got, so running out of descriptors is easy to tell from other trouble.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!("open files limit: {limit}"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let settings = args.settings()?;
    let listener = chat_server::listener::listen_tcp(args.addr, args.listen_backlog)
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    chat_server::run(listener, settings, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
