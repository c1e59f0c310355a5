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
    /// auto, cpu, cuda, ort, openvino or llamacpp (GGUF models only).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Bearer token required on every route but /health.
    #[arg(long, env = "IPFS_ACCELERATE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    body_limit: usize,
    /// Largest audio upload (/v1/audio/transcriptions), in bytes.
    #[arg(long, default_value_t = 25 * 1024 * 1024)]
    upload_limit: usize,
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
    /// Serve a non-loopback --addr without --api-key (refused otherwise).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Largest max_tokens a generation request may ask for (400 above).
    #[arg(long, default_value_t = 4096)]
    max_tokens_limit: usize,
    /// Open connections at most; more wait until one closes.
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers (and an idle
    /// keep-alive connection is kept).
    #[arg(long, default_value_t = 10)]
    header_timeout_s: u64,
    /// Seconds a client has to send a request's body.
    #[arg(long, default_value_t = 30)]
    body_timeout_s: u64,
    /// Seconds in-flight requests get after SIGTERM / Ctrl-C.
    #[arg(long, default_value_t = 10)]
    shutdown_grace_s: u64,
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
        upload_limit: args.upload_limit,
        insecure_no_auth: args.insecure_no_auth,
        max_tokens_limit: args.max_tokens_limit,
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs(args.header_timeout_s),
        body_timeout: Duration::from_secs(args.body_timeout_s),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_s),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(serve(
        config,
        accelerator,
        |addr| eprintln!("listening on http://{addr}"),
        shutdown_signal(),
    ));
    // Dropping a runtime waits for its blocking threads; a generation the
    // grace period cut short is cancelled but may be inside one model step.
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    Ok(())
}
