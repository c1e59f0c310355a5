//! A bounded mutation fuzzer that runs on stable Rust (cargo-fuzz needs
//! nightly, which is not reachable here): real files as seeds, byte- and
//! JSON-level mutations from a seeded generator, each input run under the
//! library's `contain` (a `catch_unwind`) with its time measured. A panic
//! or an input that runs longer than [`HANG`] is a finding; its input is saved under
//! `target/fuzz-findings/<target>/` so it can be replayed. Allocations
//! sized by the input are caught by the address-space limit the fuzz tests
//! set for their process ([`limit_address_space`]): past it the allocation
//! fails and the process aborts, which fails the test.
//!
//! `IPFS_ACCELERATE_FUZZ_SECONDS` sets the time per target (default
//! [`DEFAULT_SECONDS`], what `cargo xtask ci` runs); `cargo xtask fuzz`
//! runs longer. `IPFS_ACCELERATE_FUZZ_SEED` changes the generator's seed.

use ipfs_accelerate::skills::load::contained::contain;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Seconds per target when the environment sets none.
pub const DEFAULT_SECONDS: u64 = 4;

/// One input taking longer than this is reported as a hang.
pub const HANG: Duration = Duration::from_secs(10);

/// Time per target, from `IPFS_ACCELERATE_FUZZ_SECONDS`.
pub fn budget() -> Duration {
    let seconds = std::env::var("IPFS_ACCELERATE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    Duration::from_secs(seconds)
}

/// A small deterministic generator (SplitMix64): the same seed replays the
/// same inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `target`, from `IPFS_ACCELERATE_FUZZ_SEED` (or a
    /// fixed default) mixed with the target's name.
    pub fn for_target(target: &str) -> Self {
        let base: u64 = std::env::var("IPFS_ACCELERATE_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x1f5a_cce1_e7a7_e5ed);
        let digest = Sha256::digest(target.as_bytes());
        let mut mix = [0u8; 8];
        mix.copy_from_slice(&digest[..8]);
        Self(base ^ u64::from_le_bytes(mix))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Integers that break size arithmetic: zero, one, sign boundaries, maxima.
const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// 1 to 4 byte-level mutations of `seed`, each at an offset below `focus`
/// (a header's length, say) three times out of four.
pub fn mutate_bytes(rng: &mut Rng, seed: &[u8], focus: usize) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let span = if rng.below(4) < 3 && focus > 0 {
            focus.min(data.len())
        } else {
            data.len()
        };
        let at = rng.below(span.max(1));
        match rng.below(8) {
            0 if !data.is_empty() => {
                let bit = rng.below(8);
                if let Some(b) = data.get_mut(at) {
                    *b ^= 1 << bit;
                }
            }
            1 if !data.is_empty() => {
                if let Some(b) = data.get_mut(at) {
                    *b = INTERESTING[rng.below(4)] as u8;
                }
            }
            2 => {
                let width = [2usize, 4, 8][rng.below(3)];
                let value = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                for (i, byte) in value.iter().take(width).enumerate() {
                    if let Some(b) = data.get_mut(at + i) {
                        *b = *byte;
                    }
                }
            }
            3 => data.truncate(at),
            4 if at < data.len() => {
                let end = (at + 1 + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
            5 => {
                let junk: Vec<u8> = (0..1 + rng.below(32))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                let at = at.min(data.len());
                data.splice(at..at, junk);
            }
            6 if at < data.len() => {
                let end = (at + 1 + rng.below(256)).min(data.len());
                let chunk = data[at..end].to_vec();
                let to = rng.below(data.len() + 1);
                data.splice(to..to, chunk);
            }
            _ => {
                // Text numbers that overflow or mean nothing.
                let text = [
                    "0",
                    "-1",
                    "99999999999999999999",
                    "1e400",
                    "NaN",
                    "\"\"",
                    "null",
                ][rng.below(7)];
                let at = at.min(data.len());
                data.splice(at..at, text.bytes());
            }
        }
    }
    data
}

/// 1 to 3 structural mutations of a JSON document: a value replaced by a
/// hostile one (zero, negative, huge, wrong type), or a key removed.
pub fn mutate_json(rng: &mut Rng, seed: &Value) -> Value {
    let mut value = seed.clone();
    for _ in 0..1 + rng.below(3) {
        let mut slots = Vec::new();
        collect_paths(&value, &mut Vec::new(), &mut slots);
        if slots.is_empty() {
            break;
        }
        let path = slots[rng.below(slots.len())].clone();
        if rng.one_in(5) {
            remove_at(&mut value, &path);
        } else if let Some(slot) = pointer_mut(&mut value, &path) {
            *slot = hostile_value(rng);
        }
    }
    value
}

fn hostile_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::from(0),
        1 => Value::from(-1),
        2 => Value::from(u64::MAX),
        3 => Value::from(1u64 << 40),
        4 => Value::from(i64::MIN),
        5 => serde_json::json!(1e308),
        6 => serde_json::json!(-0.0),
        7 => Value::from("x"),
        8 => Value::Null,
        9 => serde_json::json!([]),
        10 => serde_json::json!({}),
        _ => Value::from(rng.below(5) as u64),
    }
}

/// Every value's path (object keys and array indices as strings).
fn collect_paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                at.push(k.clone());
                out.push(at.clone());
                collect_paths(v, at, out);
                at.pop();
            }
        }
        // Long arrays (vocabularies) would swamp the choice: a few items.
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate().take(8) {
                at.push(i.to_string());
                out.push(at.clone());
                collect_paths(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn pointer_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut current = value;
    for key in path {
        current = match current {
            Value::Object(map) => map.get_mut(key)?,
            Value::Array(items) => items.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn remove_at(value: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    if let Some(Value::Object(map)) = pointer_mut(value, parent) {
        map.remove(last);
    }
}

/// Limits this process's address space to `bytes`, so an allocation sized
/// by a hostile input fails (and aborts the test) instead of succeeding on
/// a large machine.
pub fn limit_address_space(bytes: u64) {
    let limit = bytes.to_string();
    // `prlimit` on our own pid: no unsafe code, no extra crate.
    let pid = std::process::id().to_string();
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--as={limit}:{limit}")])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("fuzz: could not limit the address space (prlimit unavailable)");
    }
}

/// Runs `check` on every seed, then on mutations from `mutate` until the
/// budget is spent. Returns the findings (panics and hangs), each naming the
/// saved input.
pub fn fuzz(
    target: &str,
    seeds: &[Vec<u8>],
    mut mutate: impl FnMut(&mut Rng, &[u8]) -> Vec<u8>,
    mut check: impl FnMut(&[u8]),
) -> Vec<String> {
    assert!(!seeds.is_empty(), "{target}: no seeds");
    let mut rng = Rng::for_target(target);
    let budget = budget();
    let start = Instant::now();
    let mut findings = Vec::new();
    let mut runs = 0usize;
    let previous_hook = std::panic::take_hook();
    // Findings are reported with their input, not as panic noise.
    std::panic::set_hook(Box::new(|_| {}));
    // Written before each run: an abort (a failed allocation, a stack
    // overflow) leaves the input that caused it here.
    let last = crate::workspace_root()
        .join("target")
        .join("fuzz-findings")
        .join(target);
    let _ = std::fs::create_dir_all(&last);
    let last = last.join("last-input.bin");
    let mut run_one = |input: Vec<u8>, findings: &mut Vec<String>| {
        let _ = std::fs::write(&last, &input);
        let began = Instant::now();
        let outcome = contain(|| check(&input));
        let took = began.elapsed();
        let what = match outcome {
            Err(panic) => Some(format!("panic: {panic}")),
            Ok(()) if took > HANG => Some(format!("took {took:?}")),
            Ok(()) => None,
        };
        if let Some(what) = what {
            let saved = save_finding(target, &input);
            findings.push(format!("{target}: {what} (input: {})", saved.display()));
        }
    };
    for seed in seeds {
        run_one(seed.clone(), &mut findings);
        runs += 1;
    }
    while start.elapsed() < budget && findings.len() < 5 {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        run_one(input, &mut findings);
        runs += 1;
    }
    std::panic::set_hook(previous_hook);
    eprintln!(
        "fuzz {target}: {runs} inputs in {:.1} s, {} findings",
        start.elapsed().as_secs_f64(),
        findings.len()
    );
    findings
}

fn save_finding(target: &str, input: &[u8]) -> PathBuf {
    let dir = crate::workspace_root()
        .join("target")
        .join("fuzz-findings")
        .join(target);
    let name = hex::encode(&Sha256::digest(input)[..8]);
    let path = dir.join(format!("{name}.bin"));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(&path, input);
    path
}

/// Mutations of a JSON seed: structural three times out of four, bytes
/// otherwise (broken syntax must be an error too).
pub fn mutate_json_bytes(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(seed) {
        Ok(value) if rng.below(4) < 3 => {
            serde_json::to_vec(&mutate_json(rng, &value)).unwrap_or_default()
        }
        _ => mutate_bytes(rng, seed, 0),
    }
}
