//! Listening ports for local node processes, from below the kernel's
//! ephemeral range.
//!
//! A port found free by binding port 0 comes from the ephemeral range, the
//! range every outgoing connection and every `bind(0)` also draws from. The
//! node binds it only after it starts, and binds it again after each
//! restart: in between, the harness's or a test's own client connections
//! (all from 127.0.0.1), a proxy's `bind(0)` or another run on the machine
//! can take it, and the node exits with "address in use" (a cluster that
//! never elects a leader, or a killed node that never comes back). Used by
//! the harness's process runtime and by `bench::LocalCluster` (named, not
//! linked: this module is a leaf below them). Ports below the ephemeral
//! range are taken only by listeners that ask for them by number: the
//! pool walks them from a start drawn per process, skips any a bind finds
//! busy, and never hands one out twice.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// The lowest port the pool hands out.
const POOL_LOW: u16 = 10_000;
/// The pool needs at least this many ports below the ephemeral range;
/// with fewer it falls back to `bind(0)`.
const POOL_SIZE_MIN: u16 = 2_000;

/// The next candidate (an offset into the pool), per process.
static CURSOR: Mutex<Option<u32>> = Mutex::new(None);

/// A port free on `ip` now, that no other call in this process returned.
pub fn free_port(ip: Ipv4Addr) -> io::Result<u16> {
    let Some(high) = ephemeral_low().filter(|&l| l >= POOL_LOW + POOL_SIZE_MIN) else {
        return bind_zero(ip);
    };
    let size = u32::from(high - POOL_LOW);
    let mut cursor = CURSOR.lock().unwrap_or_else(|p| p.into_inner());
    let start = *cursor.get_or_insert_with(|| start_offset(size));
    for step in 0..size {
        let offset = (start + step) % size;
        let port = POOL_LOW + offset as u16;
        if TcpListener::bind((ip, port)).is_ok() {
            *cursor = Some((offset + 1) % size);
            return Ok(port);
        }
    }
    bind_zero(ip)
}

fn bind_zero(ip: Ipv4Addr) -> io::Result<u16> {
    let listener = TcpListener::bind((ip, 0))
        .map_err(|e| io::Error::new(e.kind(), format!("binding {ip}:0: {e}")))?;
    Ok(listener.local_addr()?.port())
}

/// The first port of the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`).
fn ephemeral_low() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

/// Where this process starts in the pool: apart from other processes
/// drawing from it at the same time (tests run several at once).
fn start_offset(size: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    (h.finish() % u64::from(size)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_below_the_ephemeral_range_and_are_never_repeated() {
        let ip = Ipv4Addr::LOCALHOST;
        let ports: Vec<u16> = (0..50).map(|_| free_port(ip).unwrap()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        if let Some(low) = ephemeral_low().filter(|&l| l >= POOL_LOW + POOL_SIZE_MIN) {
            assert!(
                ports.iter().all(|&p| (POOL_LOW..low).contains(&p)),
                "{ports:?}"
            );
        }
    }

    #[test]
    fn a_port_in_use_is_skipped() {
        let ip = Ipv4Addr::LOCALHOST;
        let next = free_port(ip).unwrap();
        // Hold the following candidate, as another program might.
        let held = TcpListener::bind((ip, next + 1)).ok();
        let after = free_port(ip).unwrap();
        if held.is_some() {
            assert_ne!(after, next + 1);
        }
        assert_ne!(after, next);
    }
}
