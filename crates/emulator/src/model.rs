//! The prompt-cache model: N machines, routing, transport-aware placement (HTTP affinity, WebSocket
//! connections pinned at the handshake, turn state), overflow above a per prefix+key rate, and the stats.
//!
//! Invariants: routing is a pure function of (model, first 256 tokens, affinity key) so the same
//! request always has the same *rule* machine; with `http_affinity` 1.0 (the default) the rule machine is
//! the primary, exactly as before transport-aware routing; below 1.0 a request reaches the rule machine
//! with that probability and otherwise a front-door machine, both drawn from a hash of (seed, route key,
//! the route key's request count), so a replay is deterministic; a pinned request (a WebSocket
//! connection's machine, or the issuer of a valid turn state) goes to its machine and never overflows;
//! an unpinned request overflows only when at least `overflow_rpm` requests with the same route key
//! arrived in the previous 60 s of emulator time, and then goes to a machine other than the primary
//! (never with one machine); every served request updates the stats once, under its transport too.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::cache::{BlockHash, Machine, block_chain};
use crate::config::{CacheRules, EmulatorConfig, RoutingMode};
use crate::stats::{Counters, MachineStats, StatsSnapshot};

/// Number of leading tokens hashed for routing ("typically the first 256 tokens").
pub const ROUTING_PREFIX_TOKENS: usize = 256;
/// Overflow rate window.
const RATE_WINDOW_MS: u64 = 60_000;

/// What routing and caching need to know about one request.
#[derive(Debug, Clone, Copy)]
pub struct CacheRequest<'a> {
    /// Model slug; caches are per model (it seeds the block chain).
    pub model: &'a str,
    /// The prompt's tokens.
    pub tokens: &'a [u32],
    /// Body `prompt_cache_key`.
    pub prompt_cache_key: Option<&'a str>,
    /// `session-id` (or `session_id`) header.
    pub session_id: Option<&'a str>,
}

/// How a request reached the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// `POST …/responses` (SSE or JSON).
    #[default]
    Http,
    /// A `response.create` frame on a WebSocket connection.
    Ws,
}

impl Transport {
    /// `http` or `ws` (the request log's and the stats' label).
    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Ws => "ws",
        }
    }
}

/// Where a request is placed before routing: its transport and an optional fixed machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Placement {
    /// The transport (for the per-transport stats).
    pub transport: Transport,
    /// A machine fixed before routing: the WebSocket connection's, or a valid turn state's issuer.
    pub pinned: Option<usize>,
}

/// What the cache model decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Machine that served the request.
    pub machine: usize,
    /// Machine routing picked before overflow.
    pub primary: usize,
    /// Whether the request overflowed.
    pub overflowed: bool,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Tokens read from the cache.
    pub cached_tokens: u64,
    /// Tokens written to the cache.
    pub write_tokens: u64,
}

/// All machines plus routing state and counters.
#[derive(Debug)]
pub struct CacheModel {
    machines: Vec<Machine>,
    rules: CacheRules,
    routing: RoutingMode,
    overflow_rpm: usize,
    capacity_blocks: Option<usize>,
    rates: HashMap<u64, VecDeque<u64>>,
    totals: Counters,
    per_key: BTreeMap<String, Counters>,
    per_machine: Vec<Counters>,
    overflow_in: Vec<u64>,
    overflowed: u64,
    http_affinity: f64,
    seed: u64,
    draws: HashMap<u64, u64>,
    per_transport: BTreeMap<String, Counters>,
}

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(first)
}

impl CacheModel {
    /// A cold cache model for `config`.
    pub fn new(config: &EmulatorConfig) -> Self {
        let n = config.machines.max(1);
        let capacity_blocks = config.machine_capacity_tokens.map(|t| t / config.cache.block_tokens.max(1));
        Self {
            machines: (0..n).map(|_| Machine::new(capacity_blocks)).collect(),
            rules: config.cache.clone(),
            routing: config.routing,
            overflow_rpm: config.overflow_rpm,
            capacity_blocks,
            rates: HashMap::new(),
            totals: Counters::default(),
            per_key: BTreeMap::new(),
            per_machine: vec![Counters::default(); n],
            overflow_in: vec![0; n],
            overflowed: 0,
            http_affinity: config.http_affinity.clamp(0.0, 1.0),
            seed: config.routing_seed,
            draws: HashMap::new(),
            per_transport: BTreeMap::new(),
        }
    }

    /// The machine a request with route key `route` and rule machine `rule` reaches: the rule machine
    /// with probability `http_affinity`, else the front door's pick (uniform over all machines). Both
    /// draws hash (seed, route, this route's draw count), so a replay draws the same machines.
    fn affinity_pick(&mut self, route: u64, rule: usize) -> usize {
        if self.http_affinity >= 1.0 {
            return rule;
        }
        if self.draws.len() > 100_000 {
            self.draws.clear();
        }
        let count = self.draws.entry(route).or_insert(0);
        let n = *count;
        *count += 1;
        let seed = self.seed.to_le_bytes();
        let (r, c) = (route.to_le_bytes(), n.to_le_bytes());
        let u = hash64(&[b"affinity", &seed, &r, &c]) as f64 / (u64::MAX as f64 + 1.0);
        if u < self.http_affinity {
            rule
        } else {
            (hash64(&[b"front-door", &seed, &r, &c]) % self.machines.len() as u64) as usize
        }
    }

    /// The machine a new WebSocket connection is served by for its life, decided at the handshake by the
    /// HTTP rule with what the handshake has: its `session-id` is the affinity key (the body's
    /// `prompt_cache_key` and prefix do not exist yet). The connection reaches that rule machine with
    /// probability `http_affinity`, else the front door's pick; without a session header the front door
    /// picks (from the connection number).
    pub fn route_connection(&mut self, session_id: Option<&str>, connection: u64) -> usize {
        let n = self.machines.len() as u64;
        match session_id {
            Some(sid) => {
                let route = hash64(&[b"ws", b"k", sid.as_bytes()]);
                self.affinity_pick(route, (route % n) as usize)
            }
            None => {
                let seed = self.seed.to_le_bytes();
                (hash64(&[b"ws-front-door", &seed, &connection.to_le_bytes()]) % n) as usize
            }
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &CacheRules {
        &self.rules
    }

    /// Number of machines.
    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }

    /// The route key (prefix+key identity used for overflow) and the primary machine of a request.
    pub fn route(&self, req: &CacheRequest<'_>) -> (u64, usize) {
        let head = &req.tokens[..req.tokens.len().min(ROUTING_PREFIX_TOKENS)];
        let head_bytes: Vec<u8> = head.iter().flat_map(|t| t.to_le_bytes()).collect();
        let affinity = match self.routing {
            RoutingMode::Docs => req.prompt_cache_key,
            RoutingMode::SessionHeader => req.session_id.or(req.prompt_cache_key),
        };
        let (tag, key): (&[u8], &[u8]) = match affinity {
            Some(k) => (b"k", k.as_bytes()),
            None => (b"-", b""),
        };
        let route = hash64(&[req.model.as_bytes(), &head_bytes, tag, key]);
        (route, (route % self.machines.len() as u64) as usize)
    }

    /// Route, look up, write and count one request at `now_ms`.
    pub fn serve(&mut self, req: &CacheRequest<'_>, now_ms: u64) -> Outcome {
        let chain = block_chain(req.model, req.tokens, self.rules.block_tokens);
        self.serve_chain(req, &chain, now_ms)
    }

    /// [`CacheModel::serve`] with the request's block chain computed by the caller
    /// (`block_chain(req.model, req.tokens, rules.block_tokens)`), so the hashing can run outside the
    /// lock that guards the model.
    pub fn serve_chain(&mut self, req: &CacheRequest<'_>, chain: &[BlockHash], now_ms: u64) -> Outcome {
        self.serve_placed(req, chain, now_ms, Placement::default())
    }

    /// [`CacheModel::serve_chain`] with a placement: the transport and, for pinned requests, the machine.
    pub fn serve_placed(
        &mut self,
        req: &CacheRequest<'_>,
        chain: &[BlockHash],
        now_ms: u64,
        placement: Placement,
    ) -> Outcome {
        let n = self.machines.len();
        let (route, rule) = self.route(req);
        let (primary, recent) = match placement.pinned {
            Some(m) => (m % n, 0),
            None => {
                let primary = self.affinity_pick(route, rule);
                let window = self.rates.entry(route).or_default();
                while window.front().is_some_and(|t| now_ms.saturating_sub(*t) >= RATE_WINDOW_MS) {
                    window.pop_front();
                }
                let recent = window.len();
                window.push_back(now_ms);
                (primary, recent)
            }
        };
        let overflowed = placement.pinned.is_none() && n > 1 && recent >= self.overflow_rpm;
        let machine = if overflowed {
            let offset = 1 + (hash64(&[&route.to_le_bytes(), &(recent as u64).to_le_bytes()]) % (n as u64 - 1));
            (primary + offset as usize) % n
        } else {
            primary
        };
        if self.rates.len() > 100_000 {
            self.rates.retain(|_, w| w.back().is_some_and(|t| now_ms.saturating_sub(*t) < RATE_WINDOW_MS));
        }
        let served = match self.machines.get_mut(machine) {
            Some(m) => m.serve(chain, req.tokens.len(), now_ms, &self.rules),
            None => Default::default(),
        };
        let input = req.tokens.len() as u64;
        self.totals.add(input, served.cached_tokens, served.write_tokens);
        self.per_key.entry(req.prompt_cache_key.unwrap_or("").to_owned()).or_default().add(
            input,
            served.cached_tokens,
            served.write_tokens,
        );
        if let Some(c) = self.per_machine.get_mut(machine) {
            c.add(input, served.cached_tokens, served.write_tokens);
        }
        self.per_transport.entry(placement.transport.name().to_owned()).or_default().add(
            input,
            served.cached_tokens,
            served.write_tokens,
        );
        if overflowed {
            self.overflowed += 1;
            if let Some(c) = self.overflow_in.get_mut(machine) {
                *c += 1;
            }
        }
        Outcome {
            machine,
            primary,
            overflowed,
            input_tokens: input,
            cached_tokens: served.cached_tokens,
            write_tokens: served.write_tokens,
        }
    }

    /// Fill the cache-related parts of a stats snapshot.
    pub fn fill_snapshot(&self, snap: &mut StatsSnapshot) {
        snap.totals = self.totals.clone();
        snap.overflowed = self.overflowed;
        snap.per_key = self.per_key.clone();
        snap.per_transport = self.per_transport.clone();
        snap.per_machine = self
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| MachineStats {
                machine: i,
                counters: self.per_machine.get(i).cloned().unwrap_or_default(),
                stored_blocks: m.stored_blocks(),
                overflow_in: self.overflow_in.get(i).copied().unwrap_or(0),
            })
            .collect();
    }

    /// Drop every cached block, rate window and counter.
    pub fn reset(&mut self) {
        let n = self.machines.len();
        self.machines = (0..n).map(|_| Machine::new(self.capacity_blocks)).collect();
        self.rates.clear();
        self.totals = Counters::default();
        self.per_key.clear();
        self.per_machine = vec![Counters::default(); n];
        self.overflow_in = vec![0; n];
        self.overflowed = 0;
        self.draws.clear();
        self.per_transport.clear();
    }
}
