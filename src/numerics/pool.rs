//! The tensor engine's threads: `threads - 1` persistent workers plus the calling thread run
//! each parallel region ([`for_each`]) as a fork-join over numbered tasks.
//!
//! Why a pool of our own rather than rayon: a region started from outside a rayon pool goes
//! through its injector queue, which allocates a block every 63 jobs, and training must not
//! allocate in steady state. This pool allocates only when the thread count changes.
//!
//! Threading model: BLAS always runs single-threaded (see [`set_threads`]); every parallel
//! GEMM is split here into independent output blocks, so the only threads doing work are
//! this pool's, one per core asked for, and OpenBLAS's own pool never competes with them.
//!
//! Tasks are claimed dynamically, so a thread that other processes keep off the CPU only
//! delays the task it holds. Determinism: tasks are claimed dynamically, but a task's result never depends on which
//! thread ran it or when (each task writes its own outputs; no shared reductions), and how
//! work is cut into tasks depends only on the thread count. So the same thread count gives
//! the same bits; a region that finds the pool busy (another model in another thread) runs
//! the same tasks on the calling thread, with the same results.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A region's work: `task` in `0..tasks`, run by worker `worker` in `0..threads()`.
type Job<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// `Shared::inside`'s flag: the current region still admits workers.
const OPEN: usize = 1 << (usize::BITS - 1);

struct Shared {
    /// The current region's job, valid while the region is open or any worker is inside.
    job: UnsafeCell<Option<Job<'static>>>,
    tasks: AtomicUsize,
    next: AtomicUsize,
    /// Bumped once per region (and at shutdown): idle workers wait for it to change.
    epoch: AtomicUsize,
    /// Workers inside the current region, plus [`OPEN`] until the leader has run out of
    /// tasks. A worker that comes late (other processes kept it off the CPU) finds the
    /// region closed and skips it, so the leader never waits for a thread that has no task.
    inside: AtomicUsize,
    sleepers: AtomicUsize,
    /// Workers that have started running [`work`].
    started: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the leader while no worker can be inside a region (closed,
// `inside == 0`), and read by workers only once they are inside.
unsafe impl Sync for Shared {}

struct Pool {
    threads: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// `None` until [`set_threads`] asks for more than one thread. Holding the lock is owning the
/// pool for a region; a region that finds it held runs on its own thread.
static POOL: Mutex<Option<Pool>> = Mutex::new(None);
static THREADS: AtomicUsize = AtomicUsize::new(1);

/// How long an idle worker spins, then yields, before it sleeps: steps run regions back to
/// back, and waking a sleeping thread costs more than a short region; yielding lets other
/// processes run on a busy machine.
const SPIN: Duration = Duration::from_micros(20);
const YIELD: Duration = Duration::from_micros(2000);

/// The most threads a pool runs.
pub const MAX_THREADS: usize = 1024;

/// Sets the threads of every parallel region (GEMMs, attention, elementwise layers, Adam).
/// OpenBLAS is set to one thread, for good: its GEMMs run inside our tasks. More than
/// [`MAX_THREADS`], or threads the system will not start, are an error (and the pool one
/// thread).
pub fn set_threads(threads: usize) -> std::io::Result<()> {
    crate::numerics::blas::set_threads(1);
    if threads > MAX_THREADS {
        return Err(std::io::Error::other(format!(
            "{threads} threads are more than the {MAX_THREADS} a pool runs"
        )));
    }
    let threads = threads.max(1);
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.as_ref().map_or(1, |p| p.threads) != threads {
        if let Some(old) = pool.take() {
            old.stop();
        }
        THREADS.store(1, SeqCst);
        *pool = match threads {
            1 => None,
            _ => Some(Pool::start(threads)?),
        };
    }
    THREADS.store(threads, SeqCst);
    Ok(())
}

/// The thread count last set (1 until [`set_threads`] is called).
pub fn threads() -> usize {
    THREADS.load(SeqCst)
}

impl Pool {
    fn start(threads: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            epoch: AtomicUsize::new(0),
            inside: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(threads - 1);
        for worker in 1..threads {
            let shared_ = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("microgpt-{worker}"))
                .spawn(move || work(&shared_, worker));
            match spawned {
                Ok(handle) => workers.push(handle),
                // Out of threads or address space (`ulimit -u`, `ulimit -v`): the ones
                // started are stopped, and the caller told.
                Err(e) => {
                    let started = Pool {
                        threads: worker,
                        shared,
                        workers,
                    };
                    started.stop();
                    return Err(e);
                }
            }
        }
        // A new thread allocates as it starts (the runtime's thread-locals), maybe only
        // when the OS first runs it, long after `spawn` returned: wait, so that no step
        // after this one allocates (tests/tensor_allocations.rs counts every thread's).
        while shared.started.load(SeqCst) < threads - 1 {
            std::thread::yield_now();
        }
        Ok(Pool {
            threads,
            shared,
            workers,
        })
    }

    fn stop(self) {
        self.shared.shutdown.store(true, SeqCst);
        self.shared.epoch.fetch_add(1, SeqCst);
        drop(self.shared.lock.lock());
        self.shared.wake.notify_all();
        for w in self.workers {
            let _ = w.join();
        }
    }

    /// Runs `job` over `tasks` tasks on every thread of the pool, this one as worker 0.
    fn run(&self, tasks: usize, job: Job<'_>) {
        let s = &*self.shared;
        // SAFETY: the last region is closed and empty, so no worker reads `job`; the lifetime
        // is erased only until this function returns, after the region is closed and empty.
        unsafe { *s.job.get() = Some(std::mem::transmute::<Job<'_>, Job<'static>>(job)) };
        s.tasks.store(tasks, SeqCst);
        s.next.store(0, SeqCst);
        s.inside.store(OPEN, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            drop(s.lock.lock());
            s.wake.notify_all();
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim(s, job, 0)));
        s.inside.fetch_and(!OPEN, SeqCst);
        let start = Instant::now();
        while s.inside.load(SeqCst) != 0 {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: the region is closed and every worker has left it.
        unsafe { *s.job.get() = None };
        if let Err(panic) = mine {
            std::panic::resume_unwind(panic);
        }
        assert!(!s.panicked.swap(false, SeqCst), "a tensor worker panicked");
    }
}

/// Runs tasks of the current region until none is left.
fn claim(s: &Shared, job: Job<'_>, worker: usize) {
    let tasks = s.tasks.load(SeqCst);
    loop {
        let task = s.next.fetch_add(1, SeqCst);
        if task >= tasks {
            return;
        }
        job(task, worker);
    }
}

/// Waits for the epoch to move past `seen`: spins, then yields, then sleeps.
fn wait_for_region(s: &Shared, seen: usize) {
    let start = Instant::now();
    while s.epoch.load(SeqCst) == seen {
        let idle = start.elapsed();
        if idle < SPIN {
            std::hint::spin_loop();
        } else if idle < YIELD {
            std::thread::yield_now();
        } else {
            let mut guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, SeqCst);
            while s.epoch.load(SeqCst) == seen {
                guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, SeqCst);
        }
    }
}

/// Enters the open region, if it still is; returns whether it did.
fn enter(s: &Shared) -> bool {
    let mut inside = s.inside.load(SeqCst);
    while inside & OPEN != 0 {
        match s
            .inside
            .compare_exchange(inside, inside + 1, SeqCst, SeqCst)
        {
            Ok(_) => return true,
            Err(now) => inside = now,
        }
    }
    false
}

fn work(s: &Shared, worker: usize) {
    s.started.fetch_add(1, SeqCst);
    let mut seen = 0;
    loop {
        wait_for_region(s, seen);
        seen = s.epoch.load(SeqCst);
        if s.shutdown.load(SeqCst) {
            return;
        }
        if !enter(s) {
            continue;
        }
        // SAFETY: inside the region, whose job stays until we leave.
        let job = unsafe { (*s.job.get()).expect("a region's job") };
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim(s, job, worker)));
        if run.is_err() {
            s.panicked.store(true, SeqCst);
        }
        s.inside.fetch_sub(1, SeqCst);
    }
}

/// Runs `job(task, worker)` for every `task` in `0..tasks`, in parallel when the pool has
/// threads and `flops` (the region's rough cost) is worth waking them for; otherwise on
/// this thread as worker 0. `worker` is in `0..threads()`, and no two tasks run at once with
/// the same `worker`, so it can index per-thread scratch space.
pub fn for_each(tasks: usize, flops: f64, job: &(dyn Fn(usize, usize) + Sync)) {
    if tasks > 1 && parts(flops) > 1 {
        if let Ok(pool) = POOL.try_lock() {
            if let Some(pool) = pool.as_ref() {
                return pool.run(tasks, job);
            }
        }
    }
    (0..tasks).for_each(|task| job(task, 0));
}

/// [`for_each`] over the items of `parts`, one item per task (`tasks` of them): the items
/// can be disjoint `&mut` pieces of the outputs (from `split_at_mut`, `chunks_mut`, or
/// ndarray's `split_at` and axis iterators), so each task writes its own without `unsafe`.
/// Tasks take the next item under a lock, and an item says which piece it is, so results
/// do not depend on which thread took it.
pub fn for_each_part<I: Iterator + Send>(
    tasks: usize,
    flops: f64,
    parts: I,
    job: &(dyn Fn(I::Item, usize) + Sync),
) {
    let parts = Mutex::new(parts);
    for_each(tasks, flops, &|_, worker| {
        let part = parts.lock().unwrap_or_else(|e| e.into_inner()).next();
        job(part.expect("one part per task"), worker);
    });
}

/// About 10 µs of one core's work: regions smaller than that run on one thread.
const MIN_PARALLEL_FLOPS: f64 = 4e5;

/// Into how many parts to cut work of `flops`: one per thread, or 1 when it is too small
/// to be worth the threads.
pub fn parts(flops: f64) -> usize {
    if flops >= MIN_PARALLEL_FLOPS {
        threads()
    } else {
        1
    }
}

/// The cost, in FLOPs for [`parts`], of a pass over `elements` values of one buffer: the
/// tensor engine's elementwise layers and gradient clipping are bound by memory, not
/// arithmetic (their buffers were last touched a layer or a whole pass earlier), and bringing
/// a value in from memory takes about as long as 20 FLOPs here. Counting only their
/// arithmetic kept d128 layers on one thread, at ~1.4 ns per element.
pub fn pass_cost(elements: usize) -> f64 {
    20.0 * elements as f64
}

/// Splits `0..len` into `parts` near-equal ranges; returns range `part`.
pub fn split(len: usize, parts: usize, part: usize) -> std::ops::Range<usize> {
    (len * part / parts)..(len * (part + 1) / parts)
}
