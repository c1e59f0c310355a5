//! `serve`.

use super::Context;
use ipfs_accelerate::{Accelerator, BackendKind, EndpointOptions};
use ipfs_accelerate_server::{serve, shutdown_signal, ServerConfig};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Models to serve (folder, Hub id or ipfs://cid); repeat for several.
    #[arg(long, required = true)]
    model: Vec<String>,
    /// Address to listen on (loopback by default; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// auto, cpu, cuda, ort or openvino.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Bearer token required on every route but /health.
    #[arg(long, env = "IPFS_ACCELERATE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    body_limit: usize,
    /// Most texts per batch.
    #[arg(long, default_value_t = 32)]
    max_batch_size: usize,
    /// Longest a request waits for a batch to fill, in milliseconds.
    #[arg(long, default_value_t = 2)]
    max_wait_ms: u64,
    /// Requests queued per endpoint before answering 429.
    #[arg(long, default_value_t = 1024)]
    max_queue: usize,
    /// Run each request alone (no dynamic batching).
    #[arg(long)]
    no_batching: bool,
}

pub fn run(ctx: &Context, args: ServeArgs) -> anyhow::Result<()> {
    let backend: BackendKind = args.backend.parse()?;
    let options = if args.no_batching {
        EndpointOptions {
            max_queue: args.max_queue,
            ..EndpointOptions::unbatched()
        }
    } else {
        EndpointOptions {
            max_batch_size: args.max_batch_size.max(1),
            max_wait: Duration::from_millis(args.max_wait_ms),
            max_queue: args.max_queue.max(1),
        }
    };
    let accelerator = Accelerator::new(ctx.loader()?, options);
    let config = ServerConfig {
        addr: args.addr,
        models: args.model,
        backend,
        api_key: args.api_key.filter(|k| !k.is_empty()),
        body_limit: args.body_limit,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(
        config,
        accelerator,
        |addr| eprintln!("listening on http://{addr}"),
        shutdown_signal(),
    ))?;
    Ok(())
}
