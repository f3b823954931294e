//! Command-line argument structs only; the work happens in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// codex-bridge: one binary between coding-agent clients and OpenAI's Codex backend or the Responses API.
#[derive(Debug, Parser)]
#[command(name = "codex-bridge", version, about)]
pub struct Cli {
    /// Log format on stderr (the level comes from RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Token and cache statistics from the store.
    Stats(StatsArgs),
    /// Start the emulator and the bridge in process, replay built-in scenarios, print the cache table.
    Demo(DemoArgs),
    /// Benchmarks against the emulator (numbers belong in docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Tracked sessions: list them, or show one turn by turn with its cache outcome.
    Sessions(SessionsArgs),
    /// Log in to ChatGPT (browser flow), import a Codex auth.json, or store an API key.
    Login(LoginArgs),
    /// Remove the stored credentials.
    Logout(LogoutArgs),
    /// Login, plan and token expiry, and the instruction caches (no network call).
    Status(StatusArgs),
    /// The project's task graph (fed by update_plan / todowrite, edited here).
    Tasks(TasksArgs),
    /// Prompts recorded in history.jsonl.
    History(HistoryArgs),
    /// Checks the journal and the project's git state; shows drift and the ways forward.
    Doctor(DoctorArgs),
    /// Points Codex or OpenCode at this bridge by editing its own config file (backup kept; --undo).
    Connect(ConnectArgs),
    /// Prints a shell completion script (bash, zsh or fish) to stdout.
    Completions(CompletionsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConnectClient {
    Codex,
    Opencode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WebsocketMode {
    /// Probe the running bridge: on only if it accepts a WebSocket upgrade on /v1/responses.
    Auto,
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The client whose config to edit (with --undo and no client: every client connect changed).
    #[arg(value_enum, required_unless_present = "undo")]
    pub client: Option<ConnectClient>,
    /// OpenCode only: edit DIR/opencode.json (or .jsonc) instead of the global config.
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Show the diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Put back the config as it was before the first connect.
    #[arg(long)]
    pub undo: bool,
    /// The bridge's address as clients reach it.
    #[arg(long, env = "CODEX_BRIDGE_URL", default_value = "http://127.0.0.1:8787")]
    pub bridge_url: String,
    /// Name of an environment variable holding a bridge access token for the client to send (needed only
    /// when the bridge has access_tokens).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// The model to select (default: keep the config's, or gpt-5.5 when it names none).
    #[arg(long)]
    pub model: Option<String>,
    /// Codex's `supports_websockets`.
    #[arg(long, value_enum, default_value_t = WebsocketMode::Auto)]
    pub websocket: WebsocketMode,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the generated workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The bridge's TOML config for the replay (default: the bridge's defaults).
    #[arg(long)]
    pub bridge_config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Cached tokens per scenario: client-direct vs through the bridge vs the limit.
    Cache(BenchCacheArgs),
    /// Added latency, time to first byte, throughput and memory of the bridge.
    Overhead(BenchOverheadArgs),
    /// Memory and disk one large request costs the bridge (many input items; one huge prompt).
    Amplification(BenchAmplificationArgs),
    /// /v1/responses throughput on a Redis store: Redis up, killed, restarted (one bridge process).
    StoreOutage(BenchStoreOutageArgs),
    /// SIGKILLs `serve` under load and counts completed responses missing from the usage store.
    CrashLoss(BenchCrashLossArgs),
    /// Straight to the emulator: one conversation over HTTP vs one WebSocket (cached share vs the limit
    /// under --http-affinity), and the emulator's turns per second over each transport.
    Transport(BenchTransportArgs),
}

#[derive(Debug, Args)]
pub struct BenchTransportArgs {
    /// A single-conversation scenario to replay live over both transports.
    #[arg(long, default_value = "multi-turn")]
    pub scenario: String,
    /// Emulator routing mode(s).
    #[arg(long, value_enum, default_value_t = RoutingArg::Docs)]
    pub routing: RoutingArg,
    /// The emulator's --http-affinity (default: the calibrated value).
    #[arg(long, default_value_t = codex_emulator::config::CALIBRATED_HTTP_AFFINITY)]
    pub http_affinity: f64,
    /// Routing seeds 0..N (one emulator run each).
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// Seed of the generated workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Conversations in flight in the throughput run (0 skips it).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Turns per conversation in the throughput run.
    #[arg(long, default_value_t = 50)]
    pub turns: usize,
    /// Alternating HTTP/WebSocket rounds in the throughput run.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Startup context of each throughput conversation (words, about tokens).
    #[arg(long, default_value_t = 8000)]
    pub startup_tokens: usize,
    /// Skip the cache comparison.
    #[arg(long)]
    pub no_cache: bool,
    /// JSON lines instead of the tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchAmplificationArgs {
    /// Input items of each request on the memory side (100000 is about 13.5 MB).
    #[arg(long, default_value_t = 100_000)]
    pub items: usize,
    /// Prompt size in bytes on the disk side.
    #[arg(long, default_value_t = 30_000_000)]
    pub prompt_bytes: usize,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchStoreOutageArgs {
    /// Requests per phase.
    #[arg(long, default_value_t = 6000)]
    pub requests: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// One JSON object per line per phase.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchCrashLossArgs {
    /// SIGKILLs (rounds of 1-2.5 s of load each).
    #[arg(long, default_value_t = 10)]
    pub kills: usize,
    /// Sessions driven in parallel (one request in flight each).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seed of the kill moments.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Store URL passed to `serve --store` (default: SQLite in the run's data directory).
    #[arg(long)]
    pub store: Option<String>,
    /// One JSON object per line per round, then the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoutingArg {
    Docs,
    SessionHeader,
    Both,
}

/// `bench cache --transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    Http,
    Websocket,
    Both,
}

#[derive(Debug, Args)]
pub struct BenchCacheArgs {
    /// A scenario name, or `all`.
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Emulator routing mode(s).
    #[arg(long, value_enum, default_value_t = RoutingArg::Both)]
    pub routing: RoutingArg,
    /// The client's transport (client-direct and to the bridge; the bridge uses its own upstream policy).
    #[arg(long, value_enum, default_value_t = TransportArg::Http)]
    pub transport: TransportArg,
    /// The emulator's --http-affinity (1.0: HTTP always reaches its routing machine; 0.37: the calibrated
    /// front door).
    #[arg(long, default_value_t = 1.0)]
    pub http_affinity: f64,
    /// The emulator's --routing-seed: the seed of its front door's picks (below affinity 1.0).
    #[arg(long, default_value_t = 0)]
    pub routing_seed: u64,
    /// Seed of the generated workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The bridge's TOML config for the replay (default: the bridge's defaults).
    #[arg(long)]
    pub bridge_config: Option<PathBuf>,
    /// Also write an SVG bar chart of the results to this file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Write the generated scenarios to this JSONL trace before replaying them.
    #[arg(long)]
    pub save_trace: Option<PathBuf>,
    /// Replay the scenarios of this JSONL trace instead of generating them (--scenario filters by name).
    #[arg(long, conflicts_with = "save_trace")]
    pub trace: Option<PathBuf>,
    /// One JSON object per line per scenario and routing mode.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchOverheadArgs {
    /// Multiplies the default request counts (1.0 = the documented run).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Alternating direct/bridge phases per case.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Sessions created through the bridge for the RSS-per-session figure (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    pub sessions: usize,
    /// Which cases: `requests` (one body repeated), `conversations` (multi-turn, per-turn latency over
    /// WebSocket, bridged and HTTP upstream paths) or `all`.
    #[arg(long, default_value = "all", value_parser = ["requests", "conversations", "all"])]
    pub suite: String,
    /// One JSON object per line per case.
    #[arg(long)]
    pub json: bool,
}

/// Where state lives; shared by every command that reads the store.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory (default: $CODEX_BRIDGE_HOME, else ~/.codex-bridge).
    #[arg(long, env = "CODEX_BRIDGE_HOME")]
    pub data_dir: Option<PathBuf>,
    /// Store URL: sqlite://PATH, redis://HOST:PORT or memory:// (default: SQLite in the data directory).
    #[arg(long, env = "CODEX_BRIDGE_STORE")]
    pub store: Option<String>,
    /// TOML config file.
    #[arg(long, env = "CODEX_BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address; port 0 picks a free port (default 127.0.0.1:8787).
    #[arg(long, env = "CODEX_BRIDGE_LISTEN")]
    pub listen: Option<String>,
    /// Upstream base URL; the bridge appends /responses (default https://api.openai.com/v1).
    #[arg(long, env = "CODEX_BRIDGE_UPSTREAM")]
    pub upstream: Option<String>,
    /// How the bridge authenticates upstream.
    #[arg(long, env = "CODEX_BRIDGE_UPSTREAM_AUTH", value_parser = ["api-key", "passthrough", "chatgpt"])]
    pub upstream_auth: Option<String>,
    /// Comma-separated bridge access tokens (required for a non-loopback --listen).
    #[arg(long, env = "CODEX_BRIDGE_ACCESS_TOKENS", hide_env_values = true)]
    pub access_tokens: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub command: SessionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Every tracked session, newest first.
    List(SessionsListArgs),
    /// One session turn by turn: key, classification, tokens, cached, outcome.
    Show(SessionsShowArgs),
    /// Writes a Markdown journal of a session (turns, plan changes, commits).
    Digest(SessionsDigestArgs),
}

#[derive(Debug, Args)]
pub struct SessionsListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct SessionsShowArgs {
    /// The session id (as printed by `sessions list`).
    pub id: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Import tokens (or an API key) from a Codex auth.json [default: $CODEX_HOME/auth.json, else ~/.codex/auth.json].
    #[arg(long, value_name = "PATH", num_args = 0..=1, conflicts_with = "with_api_key")]
    pub from_codex: Option<Option<PathBuf>>,
    /// Read an OpenAI API key from stdin.
    #[arg(long)]
    pub with_api_key: bool,
    /// Print the login URL without trying to open a browser.
    #[arg(long, env = "CODEX_BRIDGE_NO_BROWSER")]
    pub no_browser: bool,
    /// Seconds to wait for the browser to come back to the callback.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The data directory and the project, shared by the journal commands.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// Data directory (default: $CODEX_BRIDGE_HOME, else ~/.codex-bridge).
    #[arg(long, env = "CODEX_BRIDGE_HOME")]
    pub data_dir: Option<PathBuf>,
    /// A directory inside the project's git repository (default: the current directory).
    #[arg(long)]
    pub project: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(subcommand)]
    pub action: TasksAction,
}

#[derive(Debug, Subcommand)]
pub enum TasksAction {
    /// Every task with its status and dependencies.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Adds a pending task.
    Add {
        title: String,
        /// A task this one waits for (repeatable).
        #[arg(long = "after")]
        after: Vec<String>,
    },
    /// Marks a task in progress.
    Start { id: String },
    /// Marks a task completed (the current HEAD is added as evidence).
    Done {
        id: String,
        /// Extra evidence: a commit, a file, a note.
        #[arg(long)]
        evidence: Option<String>,
    },
    /// Marks a task blocked.
    Block {
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Makes a task wait for another (cycles and unknown ids are refused).
    Depend {
        id: String,
        #[arg(long)]
        on: String,
    },
    /// Tasks ready to work on.
    Next,
    /// Renders the graph.
    Graph {
        #[arg(long, value_enum, default_value_t = GraphFormatArg::Mermaid)]
        format: GraphFormatArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormatArg {
    Dot,
    Mermaid,
    Json,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Data directory (default: $CODEX_BRIDGE_HOME, else ~/.codex-bridge).
    #[arg(long, env = "CODEX_BRIDGE_HOME")]
    pub data_dir: Option<PathBuf>,
    /// Show at most this many of the newest entries.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Resolve the open drift events: fork the session state, fast-forward the checkpoint, or rebuild.
    #[arg(long, value_parser = ["fork", "fast-forward", "rebuild"])]
    pub resolve: Option<String>,
}

#[derive(Debug, Args)]
pub struct SessionsDigestArgs {
    /// The client's session id or the rollout's thread id.
    pub id: String,
    /// Output file (default: <data>/digests/<thread>.md); `-` prints to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Data directory (default: $CODEX_BRIDGE_HOME, else ~/.codex-bridge).
    #[arg(long, env = "CODEX_BRIDGE_HOME")]
    pub data_dir: Option<PathBuf>,
}
