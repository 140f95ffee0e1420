//! Files as microgpt writes and reads them: atomic writes (a reader sees the old file or the
//! new one, never half of either) through temporaries of a name only microgpt gives, durable
//! directory entries, checksums, and reads that take only a regular file of bounded size.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// How every temporary file or directory microgpt creates begins: a name no user gives by
/// chance (`.photos.tmp2024` is not one), and which a writer may clean only when it is also
/// recorded (see `rundir::lock`).
pub const TEMPORARY_PREFIX: &str = ".microgpt-tmp-";

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it over `path`, then
/// syncs the directory so the rename survives a power cut too.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(temporary_name(&name.to_string_lossy()));
    let result = create_synced(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .and_then(|()| File::open(dir)?.sync_all());
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `path`, which must not exist (a link planted there is not followed), with
/// `bytes`, on disk when it returns.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    create_synced(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn create_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = create_new(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn create_new(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    no_follow(&mut options);
    options.open(path)
}

/// [`write_synced`] of what `write` writes into the file as it makes it, for contents
/// never held whole; returns what `write` returns.
pub fn write_synced_with<T>(path: &Path, write: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
    let cannot = || format!("cannot write {}", path.display());
    let mut f = create_new(path).with_context(cannot)?;
    let out = write(&mut f).with_context(cannot)?;
    f.sync_all().with_context(cannot)?;
    Ok(out)
}

/// Opens without following a symbolic link in the last component, and without blocking on
/// a FIFO or a device (the kind is checked once open).
pub fn no_follow(options: &mut OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    #[cfg(not(unix))]
    let _ = options;
}

/// Makes the entries of `dir` (creations, renames) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// This process's temporary name for `name`: hidden, with microgpt's prefix and the
/// writer's pid.
pub fn temporary_name(name: &str) -> String {
    format!("{TEMPORARY_PREFIX}{}-{name}", std::process::id())
}

/// Whether `name` is one of [`temporary_name`]'s, of any process.
pub fn is_temporary(name: &str) -> bool {
    name.strip_prefix(TEMPORARY_PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(pid, name)| {
            !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()
        })
}

/// What kind of file `meta` describes, in words.
pub fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "device";
        }
    }
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// `path` opened for reading, if it is a regular file (a link to one is followed): a FIFO,
/// a device or a directory in its place is an error, never a hang or an endless read.
pub fn open_regular(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options
        .open(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{} is a {}, not a regular file: not one microgpt wrote",
            path.display(),
            kind(&meta)
        );
    }
    Ok(file)
}

/// `path`, a regular file ([`open_regular`]) of at most `limit` bytes, and its length.
pub fn open_bounded(path: &Path, limit: u64) -> Result<(File, u64)> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        bail!(
            "{} holds {len} bytes, more than the {limit} such a file may: not one microgpt wrote",
            path.display()
        );
    }
    Ok((file, len))
}

/// The bytes of `path`, a regular file ([`open_regular`]) of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (file, len) = open_bounded(path, limit)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!("{} grew past {limit} bytes while read", path.display());
    }
    Ok(bytes)
}

/// The SHA-256 of `path`, a regular file ([`open_regular`]) of at most `limit` bytes, read
/// in bounded chunks rather than whole.
pub fn sha256_file(path: &Path, limit: u64) -> Result<String> {
    let (file, _) = open_bounded(path, limit)?;
    sha256_of(file.take(limit + 1)).with_context(|| format!("cannot read {}", path.display()))
}

/// The SHA-256 of what `reader` reads, a chunk at a time.
pub fn sha256_of(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(hex(&hasher.finalize())),
            Ok(n) => hasher.update(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read_regular(path, limit)?)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// The file in a directory of outputs (`compare --out`, ...) that records what microgpt
/// wrote there: one `SHA-256 name` line per file.
pub const OUTPUTS_RECORD: &str = ".microgpt-outputs";

/// What `dir`'s record says microgpt wrote: name → SHA-256.
fn recorded(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let text = read_regular_text(&dir.join(OUTPUTS_RECORD), 1 << 20).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(sha, name)| (name.to_string(), sha.to_string()))
        .collect()
}

/// Errors, naming the first, when one of `names` exists in `dir` but is not what microgpt
/// last wrote there (it has no record of it, or it changed since), unless `force`: outputs
/// are replaced without asking only when nothing would be lost.
pub fn refuse_clobber(dir: &Path, names: &[&str], force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let record = recorded(dir);
    for name in names {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        let ours = read_regular(&path, 1 << 30)
            .is_ok_and(|bytes| record.get(*name) == Some(&sha256_hex(&bytes)));
        if !ours {
            bail!(
                "{} exists, and microgpt did not write it or it was changed since: pass --force to replace it, or write the outputs elsewhere",
                path.display()
            );
        }
    }
    Ok(())
}

/// Records `names`, just written to `dir`, as microgpt's (see [`refuse_clobber`]).
pub fn record_outputs(dir: &Path, names: &[&str]) -> Result<()> {
    let mut record = recorded(dir);
    for name in names {
        let bytes = read_regular(&dir.join(name), 1 << 30)?;
        record.insert(name.to_string(), sha256_hex(&bytes));
    }
    let text: String = record
        .iter()
        .map(|(name, sha)| format!("{sha} {name}\n"))
        .collect();
    write_atomic(&dir.join(OUTPUTS_RECORD), text.as_bytes())
}

/// The (device, inode) of a file: what stays the same however it is renamed. `None` where
/// the platform has no such numbers.
pub fn identity(meta: &Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_recognised() {
        assert!(is_temporary(&temporary_name("model.safetensors")));
        assert!(is_temporary(".microgpt-tmp-123-step-00000005"));
        assert!(!is_temporary("model.safetensors"));
        assert!(!is_temporary(".lock"));
        for users in [
            ".notes.tmp1",
            ".photos.tmp2024",
            ".microgpt-tmp-x-a",
            ".microgpt-tmp-1-",
        ] {
            assert!(!is_temporary(users), "{users}");
        }
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("microgpt-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, 100).unwrap_err().to_string();
        assert!(err.contains("is a FIFO"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a device"), "{err}");
        std::fs::write(dir.join("big"), [b'x'; 101]).unwrap();
        let err = read_regular(&dir.join("big"), 100).unwrap_err().to_string();
        assert!(err.contains("more than the 100"), "{err}");
        // A link planted where a temporary goes is not followed, and its target untouched.
        std::fs::write(dir.join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("planted")).unwrap();
        assert!(write_synced(&dir.join("planted"), b"x").is_err());
        assert_eq!(std::fs::read_to_string(dir.join("victim")).unwrap(), "keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
