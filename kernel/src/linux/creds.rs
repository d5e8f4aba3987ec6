//! Credentials and sessions of the one process: user and group ids (real,
//! effective, saved, file-system), supplementary groups, process group and
//! session. The app starts as root (uid 0, gid 0, no supplementary groups),
//! alone in its own session and process group (both its pid), as a
//! container's init does.
//!
//! Linux's rules for changing ids are kept so a server that drops root
//! (`setgid(65534); setuid(65534)`) sees what it expects and cannot take
//! root back: with effective uid 0 any id may be set; otherwise only to
//! one of the current real, effective or saved ids (EPERM). Nothing else
//! checks these ids yet (files are all accessible), which is said in
//! docs/decisions.md's "permissions" note.

use super::misc::task;
use super::Cx;
use crate::errno::{Errno, KResult};
use crate::syscall::Args;

/// Real, effective, saved and file-system id, for users or groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ids {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
    pub fs: u32,
}

/// `-1` as an id argument: leave that id unchanged.
const KEEP: u32 = u32::MAX;

impl Ids {
    fn holds(&self, id: u32) -> bool {
        id == self.real || id == self.effective || id == self.saved
    }

    /// `setresuid`-style change (KEEP leaves one alone); `privileged`:
    /// the caller's effective uid is 0.
    pub fn set_res(&mut self, r: u32, e: u32, s: u32, privileged: bool) -> KResult<()> {
        for id in [r, e, s] {
            if id != KEEP && !privileged && !self.holds(id) {
                return Err(Errno::EPERM);
            }
        }
        if r != KEEP {
            self.real = r;
        }
        if e != KEEP {
            self.effective = e;
        }
        if s != KEEP {
            self.saved = s;
        }
        self.fs = self.effective;
        Ok(())
    }

    /// `setuid`: privileged sets all three; otherwise only the effective
    /// id, to the real or saved one.
    pub fn set_one(&mut self, id: u32, privileged: bool) -> KResult<()> {
        if id == KEEP {
            return Err(Errno::EINVAL);
        }
        if privileged {
            *self = Ids {
                real: id,
                effective: id,
                saved: id,
                fs: id,
            };
            Ok(())
        } else if id == self.real || id == self.saved {
            self.effective = id;
            self.fs = id;
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    /// `setreuid`: a new real id must be the real or effective one (or
    /// privileged); the saved id follows the effective one when the real
    /// id is set or the effective id differs from the old real id.
    pub fn set_re(&mut self, r: u32, e: u32, privileged: bool) -> KResult<()> {
        let old = *self;
        if r != KEEP && !privileged && r != old.real && r != old.effective {
            return Err(Errno::EPERM);
        }
        if e != KEEP && !privileged && !old.holds(e) {
            return Err(Errno::EPERM);
        }
        if r != KEEP {
            self.real = r;
        }
        if e != KEEP {
            self.effective = e;
        }
        if r != KEEP || (e != KEEP && e != old.real) {
            self.saved = self.effective;
        }
        self.fs = self.effective;
        Ok(())
    }
}

/// The process's credentials.
#[derive(Debug, Clone, Default)]
pub struct Creds {
    pub uid: Ids,
    pub gid: Ids,
    pub groups: alloc::vec::Vec<u32>,
}

/// Linux's NGROUPS_MAX.
const NGROUPS_MAX: usize = 65536;

static CREDS: spin::Mutex<Creds> = spin::Mutex::new(Creds {
    uid: Ids {
        real: 0,
        effective: 0,
        saved: 0,
        fs: 0,
    },
    gid: Ids {
        real: 0,
        effective: 0,
        saved: 0,
        fs: 0,
    },
    groups: alloc::vec::Vec::new(),
});

fn with<R>(f: impl FnOnce(&mut Creds) -> R) -> R {
    f(&mut CREDS.lock())
}

fn arg_id(v: usize) -> u32 {
    v as u32
}

pub fn sys_getuid(_: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(with(|c| c.uid.real) as usize)
}
pub fn sys_geteuid(_: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(with(|c| c.uid.effective) as usize)
}
pub fn sys_getgid(_: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(with(|c| c.gid.real) as usize)
}
pub fn sys_getegid(_: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(with(|c| c.gid.effective) as usize)
}

pub fn sys_setuid(_: &mut Cx, a: &Args) -> KResult<usize> {
    with(|c| {
        let p = c.uid.effective == 0;
        c.uid.set_one(arg_id(a[0]), p)
    })?;
    Ok(0)
}
pub fn sys_setgid(_: &mut Cx, a: &Args) -> KResult<usize> {
    with(|c| {
        let p = c.uid.effective == 0;
        c.gid.set_one(arg_id(a[0]), p)
    })?;
    Ok(0)
}
pub fn sys_setreuid(_: &mut Cx, a: &Args) -> KResult<usize> {
    with(|c| {
        let p = c.uid.effective == 0;
        c.uid.set_re(arg_id(a[0]), arg_id(a[1]), p)
    })?;
    Ok(0)
}
pub fn sys_setregid(_: &mut Cx, a: &Args) -> KResult<usize> {
    with(|c| {
        let p = c.uid.effective == 0;
        c.gid.set_re(arg_id(a[0]), arg_id(a[1]), p)
    })?;
    Ok(0)
}
pub fn sys_setresuid(_: &mut Cx, a: &Args) -> KResult<usize> {
    with(|c| {
        let p = c.uid.effective == 0;
        c.uid.set_res(arg_id(a[0]), arg_id(a[1]), arg_id(a[2]), p)
    })?;
    Ok(0)
}
pub fn sys_setresgid(_: &mut Cx, a: &Args) -> KResult<usize> {
    with(|c| {
        let p = c.uid.effective == 0;
        c.gid.set_res(arg_id(a[0]), arg_id(a[1]), arg_id(a[2]), p)
    })?;
    Ok(0)
}

fn put_three(ctx: &mut Cx, a: &Args, ids: Ids) -> KResult<usize> {
    for (addr, v) in [(a[0], ids.real), (a[1], ids.effective), (a[2], ids.saved)] {
        ctx.copy_out(addr, &v.to_le_bytes())?;
    }
    Ok(0)
}
pub fn sys_getresuid(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let ids = with(|c| c.uid);
    put_three(ctx, a, ids)
}
pub fn sys_getresgid(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let ids = with(|c| c.gid);
    put_three(ctx, a, ids)
}

/// `setfsuid`/`setfsgid` return the previous fs id and never fail (an
/// id the caller may not take is ignored).
pub fn sys_setfsuid(_: &mut Cx, a: &Args) -> KResult<usize> {
    Ok(with(|c| {
        let old = c.uid.fs;
        let id = arg_id(a[0]);
        if id != KEEP && (c.uid.effective == 0 || c.uid.holds(id) || id == c.uid.fs) {
            c.uid.fs = id;
        }
        old
    }) as usize)
}
pub fn sys_setfsgid(_: &mut Cx, a: &Args) -> KResult<usize> {
    Ok(with(|c| {
        let old = c.gid.fs;
        let id = arg_id(a[0]);
        if id != KEEP && (c.uid.effective == 0 || c.gid.holds(id) || id == c.gid.fs) {
            c.gid.fs = id;
        }
        old
    }) as usize)
}

pub fn sys_getgroups(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (size, list) = (a[0] as i32, a[1]);
    let groups = with(|c| c.groups.clone());
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(groups.len());
    }
    if (size as usize) < groups.len() {
        return Err(Errno::EINVAL);
    }
    let bytes: alloc::vec::Vec<u8> = groups.iter().flat_map(|g| g.to_le_bytes()).collect();
    ctx.copy_out(list, &bytes)?;
    Ok(groups.len())
}

pub fn sys_setgroups(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (size, list) = (a[0], a[1]);
    if size > NGROUPS_MAX {
        return Err(Errno::EINVAL);
    }
    if with(|c| c.uid.effective) != 0 {
        return Err(Errno::EPERM);
    }
    let mut bytes = alloc::vec![0u8; size * 4];
    ctx.copy_in(list, &mut bytes)?;
    let mut groups: alloc::vec::Vec<u32> = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    groups.sort_unstable();
    with(|c| c.groups = groups);
    Ok(0)
}

// ---- process group and session: the app is alone in both ----

fn own_pid(ctx: &Cx, pid: usize) -> KResult<u32> {
    let me = task(ctx)?.pid();
    match pid as i32 {
        0 => Ok(me),
        p if p as u32 == me => Ok(me),
        _ => Err(Errno::ESRCH),
    }
}

pub fn sys_getpgrp(ctx: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(task(ctx)?.pid() as usize)
}
pub fn sys_getpgid(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    Ok(own_pid(ctx, a[0])? as usize)
}
pub fn sys_getsid(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    Ok(own_pid(ctx, a[0])? as usize)
}
/// `setpgid(0|self, 0|self)` keeps the one group; another pgid is EPERM
/// (no other process group exists to join).
pub fn sys_setpgid(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let me = own_pid(ctx, a[0])?;
    match a[1] as i32 {
        0 => Ok(0),
        g if g < 0 => Err(Errno::EINVAL),
        g if g as u32 == me => Ok(0),
        _ => Err(Errno::EPERM),
    }
}
/// The app already leads its session and group: Linux answers EPERM to a
/// group leader's `setsid`.
pub fn sys_setsid(_: &mut Cx, _: &Args) -> KResult<usize> {
    Err(Errno::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_drops_privileges_and_cannot_take_them_back() {
        let mut u = Ids::default();
        u.set_one(65534, true).unwrap();
        assert_eq!(
            (u.real, u.effective, u.saved, u.fs),
            (65534, 65534, 65534, 65534)
        );
        assert_eq!(u.set_one(0, false), Err(Errno::EPERM));
        assert_eq!(u.set_res(0, KEEP, KEEP, false), Err(Errno::EPERM));
        u.set_one(65534, false).unwrap();
    }

    #[test]
    fn saved_id_lets_an_unprivileged_process_switch_back() {
        let mut u = Ids::default();
        // Keep root as the saved id, run effectively as 1000.
        u.set_res(1000, 1000, 0, true).unwrap();
        assert_eq!(u.set_one(0, false), Ok(()));
        assert_eq!(u.effective, 0);
        assert_eq!(u.real, 1000);
    }

    #[test]
    fn setreuid_updates_the_saved_id_like_linux() {
        let mut u = Ids::default();
        u.set_re(1000, 1001, true).unwrap();
        assert_eq!((u.real, u.effective, u.saved), (1000, 1001, 1001));
        // Swapping real and effective is allowed unprivileged.
        u.set_re(1001, 1000, false).unwrap();
        assert_eq!((u.real, u.effective, u.saved), (1001, 1000, 1000));
        assert_eq!(u.set_re(5, KEEP, false), Err(Errno::EPERM));
    }
}
