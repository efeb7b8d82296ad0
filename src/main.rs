//! The `flotilla` command: `serve` runs the server, `image build` builds the default agent image.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flotilla::config::Config;
use flotilla::startup::Application;
use flotilla_actors::runtime::docker::DockerRuntime;
use flotilla_actors::runtime::image;

#[derive(Parser)]
#[command(
    name = "flotilla",
    version,
    about = "Run a fleet of AI agents in Docker containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (configured by FLOTILLA_* environment variables).
    Serve,
    /// Manage the local agent image.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the default agent image from the host's static busybox (no registry needed).
    Build {
        /// Image name.
        #[arg(long, env = "FLOTILLA_AGENT_IMAGE", default_value = image::DEFAULT_IMAGE)]
        image: String,
        /// Statically linked busybox to build from.
        #[arg(long, env = "FLOTILLA_BUSYBOX", default_value = image::DEFAULT_BUSYBOX)]
        busybox: PathBuf,
    },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,surrealdb=warn,surrealkv=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve => {
            let config = Config::from_env()?;
            Application::build(config)
                .await?
                .run_until_stopped()
                .await?;
        }
        Command::Image {
            command: ImageCommand::Build { image, busybox },
        } => {
            let runtime = DockerRuntime::connect(std::time::Duration::from_secs(60))
                .await
                .context("connecting to the Docker daemon")?;
            image::build(&runtime, &image, &busybox).await?;
            println!("built {image}");
        }
    }
    Ok(())
}
