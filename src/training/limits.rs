//! What the kernel lets this process allocate, read before anything large is: the memory
//! available (`MemAvailable`), what its control group may still use (the limit a container
//! or `systemd-run -p MemoryMax=` sets, which the kernel enforces with an OOM kill), and what
//! its address-space limit (`ulimit -v`) leaves (past it, an allocation fails and aborts).
//! Each reader takes its root so that tests can feed it a fake tree. What a command needs
//! ([`Need`]) is checked against them all, and against `--max-memory`.

use crate::training::sizes::{format_size, parse_size};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// A limit on what can still be allocated.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub bytes: u64,
    /// Where it comes from, as the error names it.
    pub source: String,
    /// Whether reserved address space (thread stacks) counts against it: only the
    /// address-space limit's does.
    pub address_space: bool,
}

/// Every limit the kernel sets now: memory available, the cgroup's room, the address space
/// left.
pub fn kernel() -> Vec<Limit> {
    let mut limits = Vec::new();
    if let Some(bytes) = mem_available(Path::new("/proc/meminfo")) {
        limits.push(Limit {
            bytes,
            source: "available (MemAvailable in /proc/meminfo; --max-memory sets another limit)"
                .into(),
            address_space: false,
        });
    }
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if let Some((bytes, group)) = cgroup_room(&cgroup, Path::new("/sys/fs/cgroup")) {
        limits.push(Limit {
            bytes,
            source: format!("left under the memory limit of the control group {group}"),
            address_space: false,
        });
    }
    if let Some(bytes) = address_space_left(Path::new("/proc/self/status")) {
        limits.push(Limit {
            bytes,
            source: "left under the address-space limit (ulimit -v)".into(),
            address_space: true,
        });
    }
    limits
}

/// `MemAvailable` of a `/proc/meminfo`: what can be allocated without swapping.
pub fn mem_available(meminfo: &Path) -> Option<u64> {
    let info = std::fs::read_to_string(meminfo).ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// What the memory control group of a process (its `/proc/PID/cgroup` text) may still use,
/// and which group binds: the least room (limit minus usage) of its group and every group
/// above it, under the cgroup file systems at `root` (v2: `root/...`, `memory.max` and
/// `memory.current`; v1: `root/memory/...`, `memory.limit_in_bytes` and
/// `memory.usage_in_bytes`). `None` when no group sets a limit.
pub fn cgroup_room(proc_cgroup: &str, root: &Path) -> Option<(u64, String)> {
    // v1's memory controller line (`4:memory:/path`) takes precedence over v2's (`0::/path`):
    // on a hybrid system it is the one that limits memory.
    let entry = |v1: bool| {
        proc_cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let ours = match v1 {
                true => controllers.split(',').any(|c| c == "memory"),
                false => controllers.is_empty(),
            };
            ours.then(|| path.to_string())
        })
    };
    let (base, limit_file, usage_file, group) = match entry(true) {
        Some(group) => (
            root.join("memory"),
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            group,
        ),
        None => (
            root.to_path_buf(),
            "memory.max",
            "memory.current",
            entry(false)?,
        ),
    };
    let read = |dir: &Path, file: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let mut least: Option<(u64, String)> = None;
    let mut path = group.trim_end_matches('/').to_string();
    loop {
        let dir = base.join(path.trim_start_matches('/'));
        // "max" (v2) does not parse: no limit. v1 says "no limit" with a huge number.
        if let Some(limit) = read(&dir, limit_file).filter(|&l| l < 1 << 62) {
            let room = limit.saturating_sub(read(&dir, usage_file).unwrap_or(0));
            if least.as_ref().is_none_or(|(r, _)| room < *r) {
                let name = if path.is_empty() { "/" } else { &path };
                least = Some((room, name.to_string()));
            }
        }
        match path.rfind('/') {
            Some(i) => path.truncate(i),
            None => break,
        }
    }
    least
}

/// The address space left under `RLIMIT_AS` (`ulimit -v`): the limit minus the `VmSize` of
/// a `/proc/PID/status`. `None` without a limit.
pub fn address_space_left(status: &Path) -> Option<u64> {
    let limit = address_space_limit()?;
    let status = std::fs::read_to_string(status).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(limit.saturating_sub(kib.saturating_mul(1024)))
}

fn address_space_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given, nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } != 0 {
            return None;
        }
        (r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

/// The environment variable that sets the memory limit in bytes (`--max-memory` sets it,
/// so that a sweep's runs inherit it).
pub const LIMIT_VAR: &str = "MICROGPT_MAX_MEMORY";

/// The limits to check against: `--max-memory` ([`LIMIT_VAR`]) or else the memory available
/// now, and always what the kernel enforces (the cgroup's limit, `ulimit -v`).
pub fn limits() -> Result<Vec<Limit>> {
    let mut limits = kernel();
    if let Ok(value) = std::env::var(LIMIT_VAR) {
        let bytes = parse_size(&value).with_context(|| format!("{LIMIT_VAR}={value}"))?;
        limits.retain(|l| !l.source.starts_with("available"));
        limits.push(Limit {
            bytes,
            source: "--max-memory".into(),
            address_space: false,
        });
    }
    Ok(limits)
}

/// What a command holds beyond its models, for the check.
#[derive(Clone, Debug)]
pub struct Need {
    /// What it is, as the error names it (`20 samples`).
    pub what: String,
    /// `None`: more than 2^128.
    pub bytes: Option<u128>,
    pub kind: Kind,
    /// What to change when it is the largest part of what does not fit.
    pub advice: &'static str,
}

/// How a [`Need`] counts against each limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Allocated from the check on.
    Resident,
    /// Allocated already (the dataset read before the model is built): the kernel's
    /// figures include it, so it counts against `--max-memory` only.
    Held,
    /// Address space reserved but not touched (thread stacks): only `ulimit -v` counts it.
    Reserved,
}

impl Need {
    /// A dataset held in memory, of `bytes` ([`crate::data::Corpus::bytes`]).
    pub fn dataset(bytes: u128) -> Self {
        Need {
            what: "the dataset".into(),
            bytes: Some(bytes),
            kind: Kind::Held,
            advice: "use a smaller dataset or raise --max-memory",
        }
    }

    /// `n` samples of up to `chars` characters each, kept until written: their ids, text and
    /// the file or report they go to.
    pub fn samples(count: usize, chars: usize) -> Self {
        Need {
            what: format!("keeping {count} samples"),
            bytes: product(count, 16 * chars as u128 + 128),
            kind: Kind::Resident,
            advice: "draw fewer samples (--num-samples)",
        }
    }

    /// `count` batches of `batch_size` sequences, kept at once (gradcheck's).
    pub fn batches(count: usize, batch_size: usize) -> Self {
        Need {
            what: format!("keeping {count} batches"),
            bytes: product(count, 16 * batch_size as u128 + 48),
            kind: Kind::Resident,
            advice: "check fewer --batches",
        }
    }

    /// A pool of `threads` threads: the address space of their stacks, and of the malloc
    /// arenas glibc gives threads that allocate (64 MiB each, up to 8 per core).
    pub fn threads(threads: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let arenas = if cfg!(target_env = "gnu") {
            threads.min(8 * cores)
        } else {
            0
        };
        Need {
            what: format!("starting {threads} threads"),
            bytes: Some(threads as u128 * THREAD_STACK + arenas as u128 * ARENA),
            kind: Kind::Reserved,
            advice: "choose fewer --threads",
        }
    }
}

/// The address space a thread reserves: Rust's default 2 MiB stack and its guard.
const THREAD_STACK: u128 = (2 << 20) + (64 << 10);
/// The address space a glibc malloc arena reserves (`HEAP_MAX_SIZE` on 64-bit).
const ARENA: u128 = 64 << 20;

/// `count * each`, `None` past 2^128.
fn product(count: usize, each: u128) -> Option<u128> {
    (count as u128).checked_mul(each)
}

/// `parts` against every one of `limits`: each counts the parts of its kind (see [`Kind`]).
pub fn check_needs(parts: &[Need], limits: &[Limit]) -> Result<u128> {
    if let Some(huge) = parts.iter().find(|p| p.bytes.is_none()) {
        bail!(
            "{} needs more than 2^128 bytes of memory: {}",
            huge.what,
            huge.advice
        );
    }
    let bytes = |p: &Need| p.bytes.unwrap_or(0);
    for limit in limits {
        let counted: Vec<&Need> = parts
            .iter()
            .filter(|p| match p.kind {
                Kind::Resident => true,
                Kind::Held => limit.source == "--max-memory",
                Kind::Reserved => limit.address_space,
            })
            .filter(|p| bytes(p) > 0)
            .collect();
        let total = counted
            .iter()
            .fold(0u128, |t, p| t.saturating_add(bytes(p)));
        if total <= u128::from(limit.bytes) {
            continue;
        }
        // The largest part first, the others after it.
        let largest = counted.iter().max_by_key(|p| bytes(p)).expect("a part");
        let others: Vec<String> = counted
            .iter()
            .filter(|p| !std::ptr::eq(**p, *largest))
            .map(|p| format!("{} about {}", p.what, format_size(bytes(p))))
            .collect();
        let all = match others.is_empty() {
            true => String::new(),
            false => format!(
                " (with {}: {} in all)",
                others.join(", "),
                format_size(total)
            ),
        };
        bail!(
            "{} needs about {} of memory{all}, more than the {} {}: {}",
            largest.what,
            format_size(bytes(largest)),
            format_size(u128::from(limit.bytes)),
            limit.source,
            largest.advice
        );
    }
    // What `--max-memory` counts: the peak resident memory estimated.
    Ok(parts
        .iter()
        .filter(|p| p.kind != Kind::Reserved)
        .map(bytes)
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup tree: (path under `root`, file, content).
    fn tree(name: &str, files: &[(&str, &str, &str)]) -> std::path::PathBuf {
        let root =
            std::env::temp_dir().join(format!("microgpt-cgroup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (dir, file, content) in files {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(file), content).unwrap();
        }
        root
    }

    #[test]
    fn a_v2_cgroup_limit_binds_at_the_tightest_level() {
        let root = tree(
            "v2",
            &[
                ("user.slice", "memory.max", "max\n"),
                ("user.slice/job", "memory.max", "536870912\n"),
                ("user.slice/job", "memory.current", "36870912\n"),
                ("user.slice/job/step", "memory.max", "max\n"),
                ("user.slice/job/step", "memory.current", "1000\n"),
            ],
        );
        let room = cgroup_room("0::/user.slice/job/step\n", &root);
        assert_eq!(room, Some((500_000_000, "/user.slice/job".into())));
        assert_eq!(cgroup_room("0::/user.slice\n", &root), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_v1_memory_controller_takes_precedence_on_a_hybrid_system() {
        let root = tree(
            "v1",
            &[
                ("memory/box", "memory.limit_in_bytes", "1073741824\n"),
                ("memory/box", "memory.usage_in_bytes", "73741824\n"),
                ("memory", "memory.limit_in_bytes", "9223372036854771712\n"),
                ("box", "memory.max", "1024\n"),
            ],
        );
        let text = "9:name=systemd:/\n4:memory:/box\n0::/box\n";
        assert_eq!(
            cgroup_room(text, &root),
            Some((1_000_000_000, "/box".into()))
        );
        assert_eq!(cgroup_room("4:memory:/\n", &root), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn meminfo_is_read_in_kib() {
        let root = tree(
            "meminfo",
            &[("", "meminfo", "MemTotal: 100 kB\nMemAvailable:  2048 kB\n")],
        );
        assert_eq!(mem_available(&root.join("meminfo")), Some(2 << 20));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
