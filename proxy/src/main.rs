//! `glance-cache-proxy`: a caching reverse proxy for OpenStack Glance image
//! downloads, plus operator commands.

mod admin;
mod config_cmd;
mod demo;
mod logging;
mod manage_cli;
mod memory;
mod offline;
mod remote;
mod serve;
mod tls;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Caching reverse proxy for OpenStack Glance image downloads.
#[derive(Debug, Parser)]
#[command(name = "glance-cache-proxy", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the caching proxy in front of the upstream image service.
    Serve {
        #[command(flatten)]
        config: config_cmd::ConfigArgs,
    },
    /// Check the configuration: print every option's effective value and where it came
    /// from, and the warnings.
    CheckConfig(config_cmd::CheckConfigArgs),
    /// Print a commented sample configuration with every option, its help and its default.
    SampleConfig {
        /// ini: the sample configuration file; markdown: a reference table of the options.
        #[arg(long, value_enum, default_value_t = config_cmd::SampleFormat::Ini)]
        format: config_cmd::SampleFormat,
    },
    /// Start a small built-in image service and the proxy in front of it,
    /// download one image twice and show the miss and the hit.
    Demo {
        /// Size of the demo image in bytes.
        #[arg(long, default_value_t = 256 * 1024 * 1024)]
        image_size: u64,
    },
    #[command(flatten)]
    Manage(manage_cli::ManageCommand),
    #[command(flatten)]
    Offline(offline::OfflineCommand),
}

fn main() -> ExitCode {
    // Invoked as glance-cache-pruner/-cleaner/-prefetcher: that subcommand.
    let cli = Cli::parse_from(offline::args_for_program_name(std::env::args_os()));
    // `serve` sets up logging from its configuration files. One-shot
    // maintenance stays quiet on success (cron mails what it prints); the
    // demo prints its results alone (RUST_LOG shows its log).
    if !matches!(cli.command, Command::Serve { .. }) {
        let quiet = matches!(
            cli.command,
            Command::Offline(_) | Command::Manage(_) | Command::Demo { .. }
        );
        if let Err(e) = logging::init(&logging::LogOptions::default().with_quiet(quiet)) {
            eprintln!("glance-cache-proxy: error: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("glance-cache-proxy: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => {
                let loaded = config
                    .load()
                    .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
                logging::init(&logging::LogOptions::from_config(&loaded.config.logging))?;
                for warning in &loaded.warnings {
                    tracing::warn!("{warning}");
                }
                serve::run(loaded.config).await
            }
            Command::CheckConfig(args) => config_cmd::check_config(&args),
            Command::SampleConfig { format } => config_cmd::sample_config(format),
            Command::Demo { image_size } => demo::run(image_size).await,
            Command::Manage(command) => manage_cli::run(command).await,
            Command::Offline(command) => offline::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("glance-cache-proxy: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
