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
//! Determinism: tasks are claimed dynamically, but a task's result never depends on which
//! thread ran it or when (each task writes its own outputs; no shared reductions), and how
//! work is cut into tasks depends only on the thread count. So the same thread count gives
//! the same bits; a region that finds the pool busy (another model in another thread) runs
//! the same tasks on the calling thread, with the same results.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A region's work: `task` in `0..tasks`, run by worker `worker` in `0..threads()`.
type Job<'a> = &'a (dyn Fn(usize, usize) + Sync);

struct Shared {
    /// The current region's job, valid from `epoch`'s bump until `running` drops to 0.
    job: UnsafeCell<Option<Job<'static>>>,
    tasks: AtomicUsize,
    next: AtomicUsize,
    /// Bumped once per region (and at shutdown): workers wait for it to change.
    epoch: AtomicUsize,
    /// Workers still inside the current region.
    running: AtomicUsize,
    sleepers: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the leader while no worker is inside a region, and read by
// workers only between the `epoch` bump that publishes it and their `running` decrement.
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

/// Spins before a worker sleeps: steps run regions back to back, and waking a sleeping
/// thread costs more than a short region.
const SPINS: usize = 1 << 16;

#[cfg(feature = "openblas")]
extern "C" {
    fn openblas_set_num_threads(num_threads: std::os::raw::c_int);
}

/// Sets the threads of every parallel region (GEMMs, attention, elementwise layers, Adam).
/// OpenBLAS is set to one thread, for good: its GEMMs run inside our tasks.
pub fn set_threads(threads: usize) {
    #[cfg(feature = "openblas")]
    // SAFETY: OpenBLAS takes any positive count and only resizes its thread pool.
    unsafe {
        openblas_set_num_threads(1)
    };
    let threads = threads.clamp(1, 1024);
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.as_ref().map_or(1, |p| p.threads) != threads {
        if let Some(old) = pool.take() {
            old.stop();
        }
        *pool = (threads > 1).then(|| Pool::start(threads));
    }
    THREADS.store(threads, SeqCst);
}

/// The thread count last set (1 until [`set_threads`] is called).
pub fn threads() -> usize {
    THREADS.load(SeqCst)
}

impl Pool {
    fn start(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            epoch: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads)
            .map(|worker| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("microgpt-{worker}"))
                    .spawn(move || work(&shared, worker))
                    .expect("spawning a tensor worker thread")
            })
            .collect();
        Pool {
            threads,
            shared,
            workers,
        }
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
        // SAFETY: no worker is inside a region (the last one ended with `running == 0`), and
        // the lifetime is erased only until this function returns, after every worker left.
        unsafe { *s.job.get() = Some(std::mem::transmute::<Job<'_>, Job<'static>>(job)) };
        s.tasks.store(tasks, SeqCst);
        s.next.store(0, SeqCst);
        s.running.store(self.threads - 1, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            drop(s.lock.lock());
            s.wake.notify_all();
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim(s, job, 0)));
        let mut spins = 0usize;
        while s.running.load(SeqCst) > 0 {
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: every worker has left the region.
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

fn work(s: &Shared, worker: usize) {
    let mut seen = 0;
    loop {
        let mut spins = 0;
        while s.epoch.load(SeqCst) == seen && spins < SPINS {
            std::hint::spin_loop();
            spins += 1;
        }
        if s.epoch.load(SeqCst) == seen {
            let mut guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, SeqCst);
            while s.epoch.load(SeqCst) == seen {
                guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, SeqCst);
        }
        seen = s.epoch.load(SeqCst);
        if s.shutdown.load(SeqCst) {
            return;
        }
        // SAFETY: published before the epoch bump we saw; stays until we decrement `running`.
        let job = unsafe { (*s.job.get()).expect("a region's job") };
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim(s, job, worker)));
        if run.is_err() {
            s.panicked.store(true, SeqCst);
        }
        s.running.fetch_sub(1, SeqCst);
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

/// Splits `0..len` into `parts` near-equal ranges; returns range `part`.
pub fn split(len: usize, parts: usize, part: usize) -> std::ops::Range<usize> {
    (len * part / parts)..(len * (part + 1) / parts)
}

/// A mutable buffer that parallel tasks write in disjoint places.
pub struct Shards<'a, F> {
    ptr: *mut F,
    len: usize,
    _buf: std::marker::PhantomData<&'a mut [F]>,
}

// SAFETY: tasks only reach the buffer through the unsafe accessors, whose callers promise
// disjoint ranges.
unsafe impl<F: Send> Sync for Shards<'_, F> {}
unsafe impl<F: Send> Send for Shards<'_, F> {}

impl<'a, F> Shards<'a, F> {
    pub fn new(buf: &'a mut [F]) -> Self {
        Shards {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: std::marker::PhantomData,
        }
    }

    /// Elements `start..start + len`.
    ///
    /// # Safety
    /// No other live reference may overlap this range.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, start: usize, len: usize) -> &mut [F] {
        assert!(start + len <= self.len, "shard out of bounds");
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }

    /// A `[rows, cols]` matrix at `start` whose rows are `stride` apart.
    ///
    /// # Safety
    /// No other live reference may overlap the matrix's elements.
    pub unsafe fn matrix(
        &self,
        start: usize,
        rows: usize,
        cols: usize,
        stride: usize,
    ) -> ndarray::ArrayViewMut2<'_, F> {
        if rows > 0 && cols > 0 {
            assert!(cols <= stride || rows == 1, "overlapping rows");
            assert!(
                start + (rows - 1) * stride + cols <= self.len,
                "matrix out of bounds"
            );
        }
        // SAFETY: in bounds (checked above), rows do not overlap, and the caller owns them.
        unsafe {
            ndarray::ArrayViewMut2::from_shape_ptr(
                ndarray::ShapeBuilder::strides((rows, cols), (stride, 1)),
                self.ptr.add(start),
            )
        }
    }
}
