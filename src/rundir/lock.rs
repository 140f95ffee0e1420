//! One writer per run directory, which writes where its lock is.
//!
//! The writer holds an OS lock (`flock`) on `DIR/.lock` for the life of its process: the
//! kernel releases it when the process ends, however it ends, so a `SIGKILL` leaves no
//! stale lock. `.lock` is opened without following a link, created exclusively, and must
//! be a regular file of one name: nothing else is ever truncated. It holds the writer's pid
//! and the record of the temporary it is writing, so that the next writer removes what a
//! killed one left, and nothing else.
//!
//! A name can be moved, removed or replaced under a live run. The writer keeps the directory
//! open, and before each commit checks that `DIR` still is that directory and `DIR/.lock`
//! still its lock: a directory moved is followed (its run is saved where it went, then
//! stops), a lock removed is taken again if no one else has, and a lock taken by another
//! writer stops the run without another write. Readers (`sample`, `compare`) take no lock:
//! a checkpoint is committed by one rename.

use crate::data::files::{self, identity, is_temporary, no_follow};
use crate::rundir::checkpoint::CHECKPOINTS_DIR;
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Seek};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".lock";

/// The end of the record in `.lock` (a longer record cut short by a kill leaves bytes past
/// it).
const END: &str = "end";

/// The exclusive right to write a run directory, until dropped or the process ends.
#[derive(Debug)]
pub struct RunLock {
    /// Where the directory is: as given, or where it was moved ([`RunLock::follow`]).
    dir: PathBuf,
    /// The directory itself, opened when it was locked.
    handle: File,
    /// `dir/.lock`, locked.
    file: File,
}

/// Why a writer may no longer write where it did: the directory or its lock changed under
/// it.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("{} was moved to {} while this run trained", .from.display(), .to.display())]
    Moved { from: PathBuf, to: PathBuf },
    #[error("{} was removed or replaced while this run trained", .0.display())]
    Gone(PathBuf),
    #[error("{} was removed while this run trained, and {holder} has taken the directory since", .path.display())]
    Taken { path: PathBuf, holder: String },
}

impl RunLock {
    /// Locks `dir` (which must exist), or says which process holds it; then removes what
    /// the last writer recorded as its unfinished temporary.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let handle = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        // The file may be removed between its opening and its locking: then again.
        for _ in 0..100 {
            let file = open_lock(&path, false)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let (who, writer) = holder(&file);
                    let what = match writer {
                        true => format!("being trained by {who}"),
                        false => format!("locked by {who}, which is not a microgpt writer"),
                    };
                    bail!(
                        "{} is {what} (it holds {}): wait for it to end, or stop it, then try again",
                        dir.display(),
                        path.display()
                    )
                }
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()))
                }
            }
            if !same_file(&path, &file) {
                continue;
            }
            let mut lock = RunLock {
                dir: dir.to_path_buf(),
                handle,
                file,
            };
            let mut previous = String::new();
            // Not UTF-8 (someone else's bytes): no record to act on.
            let _ = lock.file.read_to_string(&mut previous);
            lock.clean(&previous)?;
            lock.record(None)?;
            return Ok(lock);
        }
        bail!("{} keeps being replaced: cannot lock it", path.display())
    }

    /// The run directory (where it is now).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Errors with [`Lost`] unless the directory's name still leads to the directory this
    /// writer locked, and its `.lock` is still this writer's. A `.lock` removed is created
    /// and locked again when no other process was first.
    pub fn verify(&mut self) -> Result<()> {
        let ours = identity(&self.handle.metadata()?);
        let here = std::fs::metadata(&self.dir).ok();
        if here.as_ref().and_then(identity) != ours {
            return Err(match self.moved_to() {
                Some(to) => Lost::Moved {
                    from: self.dir.clone(),
                    to,
                },
                None => Lost::Gone(self.dir.clone()),
            }
            .into());
        }
        let path = self.dir.join(LOCK_FILE);
        if same_file(&path, &self.file) {
            return Ok(());
        }
        let taken = |file: Option<&File>| Lost::Taken {
            path: path.clone(),
            holder: file.map_or("another process".into(), |f| holder(f).0),
        };
        let file = match open_lock(&path, true) {
            Ok(file) => file,
            Err(_) => return Err(taken(File::open(&path).ok().as_ref()).into()),
        };
        if file.try_lock().is_err() || !same_file(&path, &file) {
            return Err(taken(Some(&file)).into());
        }
        self.file = file;
        self.record(None)
    }

    /// Where the locked directory is now, if it still exists under some name with this
    /// writer's lock in it.
    fn moved_to(&self) -> Option<PathBuf> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = format!("/proc/self/fd/{}", self.handle.as_raw_fd());
            let to = std::fs::read_link(fd).ok()?;
            let meta = std::fs::metadata(&to).ok()?;
            let ours = identity(&self.handle.metadata().ok()?);
            (identity(&meta) == ours && same_file(&to.join(LOCK_FILE), &self.file)).then_some(to)
        }
        #[cfg(not(target_os = "linux"))]
        None
    }

    /// Writes where the directory is now, after [`Lost::Moved`] said where.
    pub fn follow(&mut self, to: &Path) -> Result<()> {
        self.dir = to.to_path_buf();
        self.verify()
    }

    /// Records in `.lock` the temporary (a name in the directory or in `checkpoints/`) this
    /// writer is about to create, replacing the one before, which is committed or removed.
    pub fn record(&mut self, temporary: Option<&str>) -> Result<()> {
        let mut text = format!("{}\n", std::process::id());
        if let Some(t) = temporary {
            text.push_str(t);
            text.push('\n');
        }
        text.push_str(END);
        text.push('\n');
        let path = self.dir.join(LOCK_FILE);
        write_at_start(&self.file, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Removes the temporaries a killed writer recorded: names with microgpt's prefix, in
    /// the directory or in `checkpoints/`, that still are the kind it created.
    fn clean(&self, record: &str) -> Result<()> {
        let names = record.lines().skip(1).take_while(|l| *l != END);
        for name in names {
            let (under, leaf) = match name.split_once('/') {
                Some((CHECKPOINTS_DIR, leaf)) => (self.dir.join(CHECKPOINTS_DIR), leaf),
                Some(_) => continue,
                None => (self.dir.clone(), name),
            };
            if !is_temporary(leaf) || leaf.contains('/') {
                continue;
            }
            let path = under.join(leaf);
            let removed = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
                Ok(m) if m.is_file() => std::fs::remove_file(&path),
                _ => continue,
            };
            removed.with_context(|| format!("cannot remove the stale {}", path.display()))?;
        }
        Ok(())
    }

    /// Writes `bytes` to `name` in the directory atomically, after checking the directory
    /// is still this writer's (see [`RunLock::verify`]).
    pub fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.verify()?;
        self.record(Some(&files::temporary_name(name)))?;
        let written = files::write_atomic(&self.dir.join(name), bytes);
        self.explain(written)
    }

    /// `result`, or, when it failed because the directory or its lock changed meanwhile,
    /// the [`Lost`] that says so.
    pub fn explain<T>(&mut self, result: Result<T>) -> Result<T> {
        match result {
            Err(e) => Err(self.verify().err().unwrap_or(e)),
            ok => ok,
        }
    }

    /// Appends `bytes` to `name`, which must still be the regular file of `len` bytes this
    /// writer left, and syncs it.
    pub fn append(&mut self, name: &str, len: u64, bytes: &[u8]) -> Result<()> {
        self.verify()?;
        let appended = self.append_unchecked(name, len, bytes);
        self.explain(appended)
    }

    fn append_unchecked(&self, name: &str, len: u64, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        let mut options = OpenOptions::new();
        options.append(true);
        no_follow(&mut options);
        let context = || format!("cannot append to {}", path.display());
        let mut file = options.open(&path).with_context(context)?;
        let meta = file.metadata().with_context(context)?;
        if !meta.is_file() || meta.len() != len {
            bail!(
                "{} was replaced or changed while this run trained (a {} of {} bytes, not the {len} it wrote)",
                path.display(),
                files::kind(&meta),
                meta.len()
            );
        }
        let written = std::io::Write::write_all(&mut file, bytes).and_then(|()| file.sync_data());
        if written.is_err() {
            // Part of the rows may be in (a full disk): cut back to what this writer knows.
            let _ = file.set_len(len);
        }
        written.with_context(context)
    }
}

/// Opens `.lock` for reading and writing, never through a link: an existing one (unless
/// `new`), else one created exclusively. It must be a regular file with no other name.
fn open_lock(path: &Path, new: bool) -> Result<File> {
    let context = || format!("cannot open {}", path.display());
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    no_follow(&mut options);
    let opened = match (new, options.open(path)) {
        // Created exclusively; another writer creating it at the same instant wins, and then
        // it is opened as it is (the lock says which of the two writes).
        (false, Err(e)) if e.kind() == ErrorKind::NotFound => {
            match options.clone().create_new(true).open(path) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => options.open(path),
                r => r,
            }
        }
        (false, r) => r,
        (true, _) => options.create_new(true).open(path),
    };
    let file = match opened {
        Ok(file) => file,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => bail!(
            "{} is a symbolic link, not microgpt's lock: remove it (what it points to is left alone)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(context),
    };
    let meta = file.metadata().with_context(context)?;
    if !meta.is_file() {
        bail!(
            "{} is a {}, not microgpt's lock: remove it",
            path.display(),
            files::kind(&meta)
        );
    }
    #[cfg(unix)]
    if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
        bail!(
            "{} has other names (hard links), so it is not microgpt's lock: remove it (the other names keep their content)",
            path.display()
        );
    }
    Ok(file)
}

/// Whether `path` names `file` itself (not through a link).
fn same_file(path: &Path, file: &File) -> bool {
    let here = std::fs::symlink_metadata(path).ok();
    let ours = file.metadata().ok();
    match (
        here.as_ref().and_then(identity),
        ours.as_ref().and_then(identity),
    ) {
        (Some(a), Some(b)) => a == b,
        // No identities to compare (not unix): the name is trusted.
        (None, None) => here.is_some(),
        _ => false,
    }
}

/// `bytes` at the start of `file`, in one write, then the file cut to them.
fn write_at_start(file: &File, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    std::os::unix::fs::FileExt::write_all_at(file, bytes, 0)?;
    #[cfg(not(unix))]
    {
        let mut f = file;
        f.rewind()?;
        std::io::Write::write_all(&mut f, bytes)?;
    }
    file.set_len(bytes.len() as u64)
}

/// Who holds the lock on `file`, in words (`process 123`), and whether it is the writer the
/// file records (else the pid in the file is stale, and another program holds the lock).
fn holder(file: &File) -> (String, bool) {
    let mut text = String::new();
    let mut f = file;
    let _ = f
        .rewind()
        .and_then(|_| f.take(64).read_to_string(&mut text));
    let recorded: Option<u32> = text.lines().next().and_then(|l| l.trim().parse().ok());
    match (flock_holder(file), recorded) {
        (Some(pid), Some(r)) if pid == r => (format!("process {pid}"), true),
        // A writer between taking the lock and writing its pid (over none, or the last
        // writer's).
        (Some(pid), _) if command_name(pid).as_deref() == Some("microgpt") => {
            (format!("process {pid}"), true)
        }
        (Some(pid), _) => {
            let name = command_name(pid).map_or(String::new(), |c| format!(" ({c})"));
            (format!("process {pid}{name}"), false)
        }
        (None, Some(r)) if alive(r) => (format!("process {r}"), true),
        (None, _) => ("another process".into(), true),
    }
}

/// The process holding a `flock` on `file`, from `/proc/locks` (Linux).
fn flock_holder(file: &File) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().ok()?;
        let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        locks.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (kind, pid, id) = (*f.get(1)?, *f.get(4)?, *f.get(5)?);
            let mut parts = id.split(':');
            let maj = u32::from_str_radix(parts.next()?, 16).ok()?;
            let min = u32::from_str_radix(parts.next()?, 16).ok()?;
            let ino: u64 = parts.next()?.parse().ok()?;
            let ours = kind == "FLOCK" && (maj, min, ino) == (major, minor, meta.ino());
            ours.then(|| pid.parse().ok()).flatten()
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

fn command_name(pid: u32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(name.trim().to_string())
}

fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}
