//! Starting a worker process (`posix_spawn` of `/proc/self/exe`), signalling
//! and reaping it.

use std::io;
use std::os::fd::RawFd;

use super::kill;

/// A worker process started by [`spawn_process`], not yet reaped unless
/// [`Process::wait`] said so.
#[derive(Debug)]
pub(crate) struct Process {
    pid: libc::pid_t,
    status: Option<std::process::ExitStatus>,
}

/// Owns an initialised `posix_spawn_file_actions_t`; destroys it on drop.
struct FileActions(Box<libc::posix_spawn_file_actions_t>);

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: the actions were initialised by `posix_spawn_file_actions_init`
        // (the only way one is built) and are destroyed once, here.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut *self.0);
        }
    }
}

/// Owns an initialised `posix_spawnattr_t`; destroys it on drop.
struct SpawnAttributes(Box<libc::posix_spawnattr_t>);

impl Drop for SpawnAttributes {
    fn drop(&mut self) {
        // SAFETY: initialised by `posix_spawnattr_init`, destroyed once here.
        unsafe {
            libc::posix_spawnattr_destroy(&mut *self.0);
        }
    }
}

/// Turns a `posix_spawn*` return code (an error number, not `-1`) into a
/// result.
fn spawn_check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Starts `/proc/self/exe` with this process's environment plus `markers`
/// (each `NAME=value`), standard input from `/dev/null`, and the
/// descriptors of `keep` open across `exec`.
///
/// This is `posix_spawn`, which glibc and musl implement with
/// `CLONE_VFORK`: unlike `fork`, it copies none of the parent's page tables,
/// so a worker starts as fast from a large parent as from a small one. The
/// descriptors are created close-on-exec (no other thread's child inherits
/// them); `dup2` of a descriptor onto itself in the file actions clears the
/// flag in this child only (POSIX.1-2024; glibc 2.29, musl 1.1.24). On an
/// older C library the worker finds them closed and says so.
pub(crate) fn spawn_process(markers: &[&[u8]], keep: &[RawFd]) -> io::Result<Process> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStringExt;

    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    let program = c"/proc/self/exe";
    // The worker shows up in `ps` under the application's own name.
    let argv0 = std::env::args_os()
        .next()
        .and_then(|arg| CString::new(arg.into_vec()).ok())
        .unwrap_or_else(|| program.to_owned());
    let marker_names: Vec<&[u8]> = markers
        .iter()
        .map(|marker| marker.split(|&b| b == b'=').next().unwrap_or(marker))
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(name, _)| !marker_names.contains(&name.as_encoded_bytes()))
        .filter_map(|(name, value)| {
            let mut entry = name.into_vec();
            entry.push(b'=');
            entry.extend(value.into_vec());
            CString::new(entry).ok()
        })
        .collect();
    for marker in markers {
        env.push(CString::new(*marker).map_err(|_| invalid("a worker marker holds a NUL byte"))?);
    }
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|entry| entry.as_ptr()).collect();
    envp.push(std::ptr::null());

    // SAFETY: every pointer handed to the `posix_spawn*` functions below is
    // valid for the call: the actions and attributes are boxed (they never
    // move) and initialised before use, destroyed by their guards; the path,
    // `argv` and `envp` are NUL-terminated strings in arrays ending in a null
    // pointer, all alive until `posix_spawn` returns; the signal sets are
    // locals initialised by `sigemptyset`.
    unsafe {
        let mut actions = Box::new(std::mem::zeroed::<libc::posix_spawn_file_actions_t>());
        spawn_check(libc::posix_spawn_file_actions_init(&mut *actions))?;
        let mut actions = FileActions(actions);
        spawn_check(libc::posix_spawn_file_actions_addopen(
            &mut *actions.0,
            0,
            c"/dev/null".as_ptr(),
            libc::O_RDONLY,
            0,
        ))?;
        for &fd in keep {
            spawn_check(libc::posix_spawn_file_actions_adddup2(
                &mut *actions.0,
                fd,
                fd,
            ))?;
        }

        let mut attributes = Box::new(std::mem::zeroed::<libc::posix_spawnattr_t>());
        spawn_check(libc::posix_spawnattr_init(&mut *attributes))?;
        let mut attributes = SpawnAttributes(attributes);
        // The driver thread blocks SIGPIPE and the Rust runtime ignores it;
        // the worker starts with an empty mask and SIGPIPE at its default,
        // as `std::process::Command` would give it.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        let mut pipe_only: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
        spawn_check(libc::posix_spawnattr_setsigmask(&mut *attributes.0, &empty))?;
        spawn_check(libc::posix_spawnattr_setsigdefault(
            &mut *attributes.0,
            &pipe_only,
        ))?;
        spawn_check(libc::posix_spawnattr_setflags(
            &mut *attributes.0,
            (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
        ))?;

        let mut pid: libc::pid_t = 0;
        spawn_check(libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            &*actions.0,
            &*attributes.0,
            argv.as_ptr().cast(),
            envp.as_ptr().cast(),
        ))?;
        Ok(Process { pid, status: None })
    }
}

impl Process {
    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Sends `SIGKILL`, unless the process was already reaped (its pid
    /// might then belong to another process).
    pub(crate) fn kill(&self) {
        if self.status.is_none() {
            kill(self.id(), libc::SIGKILL);
        }
    }

    /// Whether the process has exited; reaps it if so.
    pub(crate) fn try_wait(&mut self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        if self.status.is_some() {
            return true;
        }
        let mut raw: libc::c_int = 0;
        // SAFETY: `raw` is a valid place for the status; `pid` is our own
        // child, not yet reaped.
        if unsafe { libc::waitpid(self.pid, &mut raw, libc::WNOHANG) } == self.pid {
            self.status = Some(std::process::ExitStatus::from_raw(raw));
            return true;
        }
        false
    }

    /// Waits for the process to exit and reaps it.
    pub(crate) fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        if let Some(status) = self.status {
            return Ok(status);
        }
        loop {
            let mut raw: libc::c_int = 0;
            // SAFETY: `raw` is a valid place for the status; `pid` is our
            // own child, not yet reaped.
            if unsafe { libc::waitpid(self.pid, &mut raw, 0) } == -1 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            } else {
                let status = std::process::ExitStatus::from_raw(raw);
                self.status = Some(status);
                return Ok(status);
            }
        }
    }
}
