//! Binding the socket file: where it goes, its mode and group, stale and live sockets.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};

use tracing::info;

use super::*;

/// Where to listen when `socket.path` is not set: `$RUNTIME_DIRECTORY/hark.sock` under
/// systemd (`RuntimeDirectory=hark` makes that `/run/hark/hark.sock`), else
/// `$XDG_RUNTIME_DIR/hark.sock`, else `/tmp/hark-$UID/hark.sock`.
pub fn default_socket_path() -> PathBuf {
    // systemd joins several runtime directories with ':'; the first is ours.
    if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY") {
        let first = dir
            .as_bytes()
            .split(|&b| b == b':')
            .next()
            .unwrap_or_default();
        if !first.is_empty() {
            return Path::new(std::ffi::OsStr::from_bytes(first)).join("hark.sock");
        }
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        if !dir.is_empty() {
            return PathBuf::from(dir).join("hark.sock");
        }
    }
    fallback_dir().join("hark.sock")
}

pub(super) fn fallback_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    PathBuf::from(format!("/tmp/hark-{uid}"))
}

/// A bound socket, ready for [`serve`]. It remembers its path so that `serve` can remove
/// the file on shutdown (and only if the file is still this socket).
#[derive(Debug)]
pub struct SocketListener {
    pub(super) listener: StdUnixListener,
    pub(super) path: PathBuf,
    /// (device, inode) of the socket file, to recognize it at removal.
    pub(super) file_id: (u64, u64),
}

impl SocketListener {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds the socket described by `settings`.
///
/// A stale socket file (nobody accepts on it) is replaced; a live one is an error naming the
/// path, and so is any other kind of file. The socket gets `mode` and `group` before it
/// appears at its path (it is bound under a temporary name and renamed), so no client can
/// connect with the wrong permissions. Does not need a tokio runtime.
pub fn bind(settings: &SocketSettings) -> Result<SocketListener> {
    let path = settings.resolved_path();
    let mode = parse_mode(&settings.mode)?;
    let gid = settings.group.as_deref().map(group_id).transpose()?;
    check_path_len(&path)?;
    ensure_parent(&path)?;
    clear_stale(&path)?;

    let name = path.file_name().unwrap_or_default().as_bytes();
    let tmp = path.with_file_name(format!(
        ".{}.{}",
        String::from_utf8_lossy(name),
        std::process::id()
    ));
    // If the temporary name would be too long, bind in place and set the mode right after.
    let staged = check_path_len(&tmp).is_ok();
    let at = if staged { &tmp } else { &path };
    if staged {
        let _ = std::fs::remove_file(&tmp); // left behind by a crash of a process with our pid
    }
    let listener = StdUnixListener::bind(at).map_err(io_err("cannot bind", at))?;
    let placed = (|| {
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("cannot set the mode of", at))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(at, None, Some(gid))
                .map_err(io_err("cannot set the group of", at))?;
        }
        if staged {
            std::fs::rename(&tmp, &path).map_err(io_err("cannot move the socket to", &path))?;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("cannot inspect", &path))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("cannot configure", &path))?;
        Ok((meta.dev(), meta.ino()))
    })();
    match placed {
        Ok(file_id) => Ok(SocketListener {
            listener,
            path,
            file_id,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(at);
            Err(e)
        }
    }
}

/// `sun_path` holds 108 bytes including the terminating NUL.
pub(super) const MAX_SOCKET_PATH: usize = 107;

pub(super) fn check_path_len(path: &Path) -> Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(PublishError::PathTooLong {
            path: path.to_owned(),
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(())
}

pub(super) fn parse_mode(mode: &str) -> Result<u32> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o777 => Ok(m),
        _ => Err(PublishError::InvalidMode(mode.to_owned())),
    }
}

/// Looks a group up by name (thread-safe `getgrnam_r`); a number that names no group is
/// taken as a gid.
pub(super) fn group_id(name: &str) -> Result<u32> {
    let unknown = || PublishError::UnknownGroup(name.to_owned());
    let cname = std::ffi::CString::new(name).map_err(|_| unknown())?;
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: every pointer refers to live, correctly sized storage for the call.
        let (rc, found) = unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut result: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            );
            (rc, (!result.is_null()).then_some(grp.gr_gid))
        };
        match (rc, found) {
            (libc::ERANGE, _) if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            (0, Some(gid)) => return Ok(gid),
            _ => return name.parse::<u32>().map_err(|_| unknown()),
        }
    }
}

pub(super) fn ensure_parent(path: &Path) -> Result<()> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_err("cannot create the socket directory", parent))?;
    }
    // /tmp is shared: make sure nobody else prepared our fallback directory for us.
    if parent == fallback_dir() {
        check_private_dir(parent)?;
    }
    Ok(())
}

/// A directory only this user can change: a directory (not a symlink to one), owned by the
/// effective user, writable by neither group nor others — whoever owns it, a group- or
/// world-writable directory lets another user replace the socket in it.
pub(super) fn check_private_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).map_err(io_err("cannot inspect", dir))?;
    // SAFETY: geteuid cannot fail and touches no memory.
    if !meta.is_dir() || meta.uid() != unsafe { libc::geteuid() } {
        return Err(PublishError::UnsafeDirectory(dir.to_owned()));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(PublishError::WritableDirectory {
            path: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

pub(super) fn clear_stale(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("cannot inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(PublishError::NotASocket(path.to_owned()));
    }
    match StdUnixStream::connect(path) {
        Ok(_) => Err(PublishError::InUse(path.to_owned())),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            match std::fs::remove_file(path) {
                Ok(()) => {
                    info!(path = %path.display(), "replaced a stale socket");
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("cannot remove the stale socket", path)(e)),
            }
        }
        Err(e) => Err(io_err("cannot check the existing socket", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_or_world_writable_socket_directory_is_refused_whoever_owns_it() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, ok) in [
            (0o700, true),
            (0o750, true),
            (0o770, false),
            (0o777, false),
            (0o702, false),
        ] {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let got = check_private_dir(dir.path());
            assert_eq!(got.is_ok(), ok, "{mode:o}: {got:?}");
            if !ok {
                let message = got.unwrap_err().to_string();
                assert!(
                    message.contains("0700") && message.contains(&format!("{mode:o}")),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn mode_parses_octal_only() {
        assert_eq!(parse_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_mode("600").unwrap(), 0o600);
        assert_eq!(parse_mode("0o640").unwrap(), 0o640);
        for bad in ["", "rw-rw----", "0888", "7777"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }
}
