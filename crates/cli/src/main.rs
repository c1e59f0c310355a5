//! The `ipfs-accelerate` command line.
//!
//! With `--json` a command prints exactly one JSON object on stdout; logs and
//! progress go to stderr. Errors are one line on stderr with a non-zero exit.

mod commands;
mod output;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run Hugging Face models on CPU, CUDA and OpenVINO, with every model file
/// loaded through a content-addressed cache shared over IPFS.
#[derive(Debug, Parser)]
#[command(name = "ipfs-accelerate", version)]
struct Cli {
    /// Print one JSON object on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Our cache root (wins over IPFS_ACCELERATE_CACHE).
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Write every applied config / checkpoint rewrite into DIR as
    /// original, rewritten and unified diff (see docs/patches.md).
    #[arg(long, global = true, value_name = "DIR")]
    dump_rewriting: Option<PathBuf>,
    /// Load models without the config / checkpoint patches (as
    /// TRANSFORMERS_PATCH_DISABLE=1).
    #[arg(long, global = true)]
    no_patches: bool,
    /// Run an ONNX backend only on graphs the model ships: never export
    /// one from the weights on first use (as IPFS_ACCELERATE_NO_EXPORT=1;
    /// a shipped merged decoder is still split into its two steps).
    #[arg(long, global = true)]
    no_export: bool,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Gate decisions, interception, storage mode and backends.
    Status,
    /// Sentence embeddings for each TEXT.
    Embed(commands::embed::EmbedArgs),
    /// Continue PROMPT with a causal language model (GPT-2, OPT, LLaMA).
    Generate(commands::generate::GenerateArgs),
    /// Output text for TEXT with an encoder-decoder model (T5).
    Text2text(commands::text2text::Text2TextArgs),
    /// Text from a WAV recording (Whisper, wav2vec2).
    Transcribe(commands::transcribe::TranscribeArgs),
    /// Score each TEXT against an image (CLIP), audio (CLAP) or video (X-CLIP).
    Similarity(commands::similarity::SimilarityArgs),
    /// Answer PROMPT about an image (LLaVA, LLaVA-NeXT).
    Caption(commands::caption::CaptionArgs),
    /// Compare one model on two backends: largest differences and latencies.
    Validate(commands::validate::ValidateArgs),
    /// Manage the local content-addressed cache.
    #[command(subcommand)]
    Cache(commands::cache::CacheCommand),
    /// Serve models over HTTP (OpenAI / TEI compatible).
    Serve(commands::serve::ServeArgs),
    /// Export a model to another format (ONNX), without PyTorch.
    #[command(subcommand)]
    Export(commands::export::ExportCommand),
    /// The config, checkpoint, KV-cache and file patches.
    #[command(subcommand)]
    Patch(commands::patch::PatchCommand),
}

fn main() -> ExitCode {
    // Bad input never reaches a panic; should a bug panic, say so in one line.
    std::panic::set_hook(Box::new(|info| {
        // A third-party parser's panic the library turns into an error.
        if ipfs_accelerate::skills::containing_panic() {
            return;
        }
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{location} (please report this bug)");
    }));
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 2 } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    // Some libraries (candle) put a captured backtrace into an error's
    // text when RUST_BACKTRACE is set: errors stay one line unless -vv asks
    // for debugging detail. Nothing else runs yet, so changing the
    // environment is safe here.
    if cli.verbose < 2 {
        std::env::remove_var("RUST_BACKTRACE");
        std::env::remove_var("RUST_LIB_BACKTRACE");
    }
    init_logging(cli.verbose);
    let ctx = commands::Context {
        json: cli.json,
        cache_dir: cli.cache_dir,
        dump_rewriting: cli.dump_rewriting,
        no_patches: cli.no_patches,
        no_export: cli.no_export,
    };
    let result = match cli.command {
        Command::Status => commands::status::run(&ctx),
        Command::Embed(args) => commands::embed::run(&ctx, args),
        Command::Generate(args) => commands::generate::run(&ctx, args),
        Command::Text2text(args) => commands::text2text::run(&ctx, args),
        Command::Transcribe(args) => commands::transcribe::run(&ctx, args),
        Command::Similarity(args) => commands::similarity::run(&ctx, args),
        Command::Caption(args) => commands::caption::run(&ctx, args),
        Command::Validate(args) => commands::validate::run(&ctx, args),
        Command::Cache(cmd) => commands::cache::run(&ctx, cmd),
        Command::Serve(args) => commands::serve::run(&ctx, args),
        Command::Export(cmd) => commands::export::run(&ctx, cmd),
        Command::Patch(cmd) => commands::patch::run(&ctx, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", output::one_line_error(&err));
            ExitCode::FAILURE
        }
    }
}

/// The command line, with negative-looking values (`--temperature -1`)
/// taken as values everywhere, so the option's own check gives the real
/// reason instead of clap's "unexpected argument '-1'".
fn parse_args() -> Result<Cli, clap::Error> {
    fn negatives_as_values(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| {
                let takes_values = arg.get_action().takes_values();
                arg.allow_negative_numbers(takes_values)
            })
            .mut_subcommands(negatives_as_values)
    }
    let matches = negatives_as_values(Cli::command()).try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    // llama.cpp's own log (target `llama-cpp-2`) warns about settings
    // chosen on purpose (a context shorter than the model's, say): only its
    // errors by default.
    let default = match verbose {
        0 => "warn,llama-cpp-2=error",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
