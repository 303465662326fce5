//! Every file the program writes goes through here: model files, checkpoints, gradients,
//! logs, pictures and DOT graphs.
//!
//! The rules, in one place:
//!
//! - A file is written to a temporary file `.NAME.PID.tmp` in the target's directory,
//!   synced, and renamed over the target, so a reader never sees half a file and a crash
//!   or a full disk never costs the previous one.
//! - Only a regular file (or nothing) is ever replaced. A directory, a device such as
//!   `/dev/null`, a FIFO or a socket is refused: renaming over it would destroy it (and,
//!   as root, replace `/dev/null` for the whole system).
//! - A symbolic link is followed: the file it points to (through any chain of links) is
//!   written, and the link stays a link.
//! - Temporary files left by a killed run (`.NAME.PID.tmp` whose process is gone) are
//!   removed on the next write to the same path.
//! - [`check_output_path`] and [`check_distinct`] let a command refuse bad outputs before
//!   any work starts: a missing directory, a non-regular file, or an output that is one of
//!   the run's inputs or another of its outputs.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why an output path is refused; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Something other than a regular file is at the path: writing there would replace it.
    #[error("{}: is {kind}, not a regular file (only regular files are replaced)", path.display())]
    NotRegularFile {
        /// The path as given.
        path: PathBuf,
        /// What is there: "a directory", "a character device", "a FIFO", ...
        kind: &'static str,
    },
    /// The directory the file would be created in does not exist.
    #[error("{}: directory {} does not exist", path.display(), dir.display())]
    NoDirectory {
        /// The path as given.
        path: PathBuf,
        /// The directory that is missing.
        dir: PathBuf,
    },
    /// The path ends in `/`, `..` or nothing: it names no file.
    #[error("{}: not a file name", path.display())]
    NotAFileName {
        /// The path as given.
        path: PathBuf,
    },
    /// An output path names the same file as an input, or as another output, of the run.
    #[error("{output} {}: is also {other}; choose another file", path.display())]
    SameFile {
        /// The output's flag (`--out`).
        output: String,
        /// The path as given for it.
        path: PathBuf,
        /// The other flag (`--data`, `--log`, ...).
        other: String,
    },
    /// The file system could not be asked about the path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl From<OutputError> for io::Error {
    /// The reason without the path: the callers of [`write_atomically`] name it themselves.
    fn from(e: OutputError) -> io::Error {
        match e {
            OutputError::Io { source, .. } => source,
            OutputError::NotRegularFile { kind, .. } => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("is {kind}, not a regular file (only regular files are replaced)"),
            ),
            OutputError::NoDirectory { dir, .. } => io::Error::new(
                io::ErrorKind::NotFound,
                format!("directory {} does not exist", dir.display()),
            ),
            OutputError::NotAFileName { .. } => {
                io::Error::new(io::ErrorKind::InvalidInput, "not a file name")
            }
            e @ OutputError::SameFile { .. } => {
                io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
            }
        }
    }
}

/// Links followed before giving up, as the kernel does (`ELOOP`).
const MAX_LINKS: usize = 40;

/// The directory a relative file name lives in: `"."` for a bare name.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The path a write to `path` really goes to: `path` itself, or, for a symbolic link, the
/// end of its chain of links (which may not exist yet, for a dangling link).
///
/// ```
/// # #[cfg(unix)] {
/// let dir = tempfile::tempdir().unwrap();
/// let (file, link) = (dir.path().join("m.safetensors"), dir.path().join("latest"));
/// std::os::unix::fs::symlink("m.safetensors", &link).unwrap();
/// assert_eq!(backprop::io::final_target(&link).unwrap(), file);
/// # }
/// ```
///
/// # Errors
/// [`OutputError::Io`] if a link cannot be read or the chain is longer than 40 links.
pub fn final_target(path: &Path) -> Result<PathBuf, OutputError> {
    let io_err = |source| OutputError::Io {
        path: path.into(),
        source,
    };
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&p).map_err(io_err)?;
                p = if link.is_absolute() {
                    link
                } else {
                    dir_of(&p).join(link)
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(io_err(e)),
        }
    }
    Err(io_err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "too many levels of symbolic links",
    )))
}

/// What is at a path that is not a regular file, in words.
fn kind_of(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    "something other than a file"
}

/// Checks, before any work starts, that [`write_atomically`] can write `path`: it names a
/// file; what is there (after following symbolic links) is a regular file or nothing; and
/// the directory it would be created in exists. For flags such as `--out`, `--log` and
/// `--plot`, so that a run fails at once rather than after training.
///
/// ```
/// use backprop::io::check_output_path;
/// let dir = tempfile::tempdir().unwrap();
/// assert!(check_output_path(&dir.path().join("m.safetensors")).is_ok());
/// let e = check_output_path(&dir.path().join("missing/m.safetensors")).unwrap_err();
/// assert!(e.to_string().contains("missing"));
/// assert!(check_output_path(dir.path()).is_err());
/// # #[cfg(unix)]
/// assert!(check_output_path("/dev/null".as_ref()).unwrap_err().to_string().contains("device"));
/// ```
///
/// # Errors
/// [`OutputError::NotRegularFile`], [`OutputError::NoDirectory`],
/// [`OutputError::NotAFileName`] or [`OutputError::Io`], each naming `path`.
pub fn check_output_path(path: &Path) -> Result<(), OutputError> {
    let target = final_target(path)?;
    match fs::metadata(&target) {
        Ok(m) if m.is_file() => return Ok(()),
        Ok(m) => {
            return Err(OutputError::NotRegularFile {
                path: path.into(),
                kind: kind_of(m.file_type()),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(OutputError::Io {
                path: path.into(),
                source,
            })
        }
    }
    if target.file_name().is_none() {
        return Err(OutputError::NotAFileName { path: path.into() });
    }
    let dir = dir_of(&target);
    if !dir.is_dir() {
        return Err(OutputError::NoDirectory {
            path: path.into(),
            dir: dir.into(),
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: through a temporary file in the same directory,
/// renamed over `path` once complete, so that a crash or a full disk never leaves half a
/// file. Follows symbolic links to the file they name; refuses to replace anything but a
/// regular file; keeps an existing file's permissions; removes stale temporary files of
/// killed runs (see the [module docs](self)).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("log.csv");
/// backprop::io::write_atomically(&path, b"epoch\n1\n").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"epoch\n1\n");
/// ```
///
/// # Errors
/// [`std::io::Error`] if the target is not a regular file, its directory does not exist
/// or is not writable, or the disk is full; the temporary file is removed then.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with(path, "", |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}

/// [`write_atomically`] for writers that can only write to a path (a PNG encoder): `write`
/// gets the temporary file's path, which ends in `suffix` (`".png"`, so that the encoder
/// picks its format by the extension), and must write the whole file there.
///
/// # Errors
/// As for [`write_atomically`], and any error of `write`.
pub fn write_atomically_with(
    path: &Path,
    suffix: &str,
    write: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    check_output_path(path)?;
    let target = final_target(path)?;
    let dir = dir_of(&target);
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    remove_stale_temps(dir, name);
    let tmp = dir.join(format!(
        ".{}.{}.tmp{suffix}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A file of this name can only be this process's own leftover: it carries our PID.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        // `create_new` does not follow a link someone put at the temporary name.
        drop(File::options().write(true).create_new(true).open(&tmp)?);
        write(&tmp)?;
        if let Ok(m) = fs::metadata(&target) {
            fs::set_permissions(&tmp, m.permissions())?;
        }
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else if let Ok(d) = File::open(dir) {
        // Makes the rename itself durable; not every system can sync a directory.
        let _ = d.sync_all();
    }
    result
}

/// The process id in a temporary file name `.{name}.{pid}.tmp[...]`, if it is one.
fn temp_pid(file_name: &str, name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?.strip_prefix(name)?;
    let (pid, tail) = rest.strip_prefix('.')?.split_once('.')?;
    if !tail.starts_with("tmp") || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` is running. On systems without `/proc`, every process is taken
/// to be running, so that a file another run is still writing is never deleted.
pub fn process_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the temporary files `.NAME.PID.tmp*` in `dir` whose process is gone: what a
/// killed run left behind. Best effort: a file that cannot be removed is left.
fn remove_stale_temps(dir: &Path, name: &OsStr) {
    let name = name.to_string_lossy();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|f| temp_pid(f, &name)) else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && pid != std::process::id() && !process_alive(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The path a file is known by: the canonical path of the file if it exists, else the
/// canonical path of its directory joined with its name, so that `d.csv`, `./d.csv` and
/// a link to it compare equal.
fn identity(path: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    let target = final_target(path).unwrap_or_else(|_| path.to_path_buf());
    match (fs::canonicalize(dir_of(&target)), target.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => target,
    }
}

/// Whether `a` and `b` name the same file: the same canonical path, or (on Unix) the same
/// device and inode, which also catches hard links.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let a = dir.path().join("d.csv");
/// std::fs::write(&a, "1,2\n").unwrap();
/// let b = dir.path().join(".").join("d.csv");
/// assert!(backprop::io::same_file(&a, &b));
/// assert!(!backprop::io::same_file(&a, &dir.path().join("e.csv")));
/// ```
pub fn same_file(a: &Path, b: &Path) -> bool {
    if identity(a) == identity(b) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    false
}

/// Refuses any output that names the same file as an input or as another output, before
/// any work starts: `train --data d.csv --out d.csv` would replace the training data.
/// Each entry is a flag and its path; an input given twice is not an error.
///
/// ```
/// use backprop::io::check_distinct;
/// use std::path::Path;
/// let dir = tempfile::tempdir().unwrap();
/// let data = dir.path().join("d.csv");
/// std::fs::write(&data, "0,1\n").unwrap();
/// let model = dir.path().join("m.safetensors");
/// assert!(check_distinct(&[("--data", &data)], &[("--out", &model)]).is_ok());
/// let e = check_distinct(&[("--data", &data)], &[("--out", &data)]).unwrap_err();
/// assert!(e.to_string().contains("is also --data"));
/// let e = check_distinct(&[], &[("--out", &model), ("--log", &model)]).unwrap_err();
/// assert!(e.to_string().starts_with("--log"));
/// ```
///
/// # Errors
/// [`OutputError::SameFile`] naming the output, its path and the other flag.
pub fn check_distinct(
    inputs: &[(&str, &Path)],
    outputs: &[(&str, &Path)],
) -> Result<(), OutputError> {
    for (i, &(flag, path)) in outputs.iter().enumerate() {
        let earlier = outputs[..i].iter();
        for &(other, other_path) in inputs.iter().chain(earlier) {
            if same_file(path, other_path) {
                return Err(OutputError::SameFile {
                    output: flag.into(),
                    path: path.into(),
                    other: other.into(),
                });
            }
        }
    }
    Ok(())
}

/// `text` for an error message: at most `max` characters, with `...` when cut, so that a
/// 200 KB metadata string or a binary file's first "line" does not flood the terminal.
///
/// ```
/// assert_eq!(backprop::io::cut("2,4,3", 80), "2,4,3");
/// assert_eq!(backprop::io::cut(&"9,".repeat(100), 6), "9,9,9,...");
/// ```
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_only_for_their_own_file() {
        assert_eq!(
            temp_pid(".m.safetensors.123.tmp", "m.safetensors"),
            Some(123)
        );
        assert_eq!(temp_pid(".c.png.77.tmp.png", "c.png"), Some(77));
        assert_eq!(temp_pid(".m.safetensors.123.tmp", "m"), None);
        assert_eq!(temp_pid(".m.x.123.tmp", "m"), None);
        assert_eq!(temp_pid(".m.123.txt", "m"), None);
        assert_eq!(temp_pid("m.123.tmp", "m"), None);
        assert_eq!(temp_pid(".m.+1.tmp", "m"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_dead_processs_temp_file_is_removed_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        // A process that has ended: its PID names no live process (it could be reused,
        // but not within these few lines).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        assert!(!process_alive(dead));
        let stale = dir.path().join(format!(".m.safetensors.{dead}.tmp"));
        let stale_png = dir.path().join(format!(".m.safetensors.{dead}.tmp.png"));
        let live = dir.path().join(".m.safetensors.1.tmp"); // init is always running
        let other = dir.path().join(format!(".n.safetensors.{dead}.tmp"));
        for p in [&stale, &stale_png, &live, &other] {
            fs::write(p, "half a file").unwrap();
        }
        write_atomically(&path, b"whole").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert!(!stale.exists() && !stale_png.exists());
        assert!(live.exists() && other.exists());
    }

    #[cfg(unix)]
    #[test]
    fn devices_fifos_and_directories_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        for (path, kind) in [
            (Path::new("/dev/null"), "character device"),
            (fifo.as_path(), "FIFO"),
            (dir.path(), "directory"),
        ] {
            let e = check_output_path(path).unwrap_err().to_string();
            assert!(e.contains(kind), "{e}");
            // Never written to in a test: as root, a rename would replace /dev/null.
            if path != Path::new("/dev/null") {
                let e = write_atomically(path, b"x").unwrap_err().to_string();
                assert!(e.contains(kind), "{e}");
            }
        }
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(fs::symlink_metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a temporary file was left"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_followed_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("runs");
        fs::create_dir(&sub).unwrap();
        let target = sub.join("m1.safetensors");
        fs::write(&target, "old").unwrap();
        let link = dir.path().join("latest");
        let link2 = dir.path().join("latest2");
        std::os::unix::fs::symlink("runs/m1.safetensors", &link).unwrap();
        std::os::unix::fs::symlink("latest", &link2).unwrap();
        write_atomically(&link2, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::symlink_metadata(&link2)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
        // A dangling link is written through too: the file it names is created.
        let dangling = dir.path().join("next");
        std::os::unix::fs::symlink("runs/m2.safetensors", &dangling).unwrap();
        write_atomically(&dangling, b"made").unwrap();
        assert_eq!(fs::read(sub.join("m2.safetensors")).unwrap(), b"made");
        assert!(fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_files_permissions_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn an_output_that_does_not_exist_yet_is_compared_by_directory_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("out.csv");
        let b = dir.path().join("sub").join("..").join("out.csv");
        fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(same_file(&a, &b));
        assert!(!same_file(&a, &dir.path().join("out2.csv")));
    }
}
