//! The control socket refuses what it does not understand and keeps going.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use crate::{fuse_or_skip, Mount};

#[test]
fn bad_commands_get_an_error_line_and_the_socket_keeps_serving() {
    if !fuse_or_skip("bad_commands_get_an_error_line_and_the_socket_keeps_serving") {
        return;
    }
    let mut m = Mount::start(8);
    let stream = UnixStream::connect(m.dir.path().join("control.sock")).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut ask = |line: &[u8]| {
        w.write_all(line).unwrap();
        let mut answer = String::new();
        r.read_line(&mut answer).unwrap();
        answer
    };
    assert_eq!(ask(b"explode\n"), "error unknown command \"explode\"\n");
    assert_eq!(
        ask(b"fail fsync EPERM\n"),
        "error fail fsync: bad error (EIO or ENOSPC) \"EPERM\"\n"
    );
    assert_eq!(
        ask(b"delay fsync\n"),
        "error delay fsync: expected delay fsync MS [JITTER_MS]\n"
    );
    let mut long = vec![b'a'; 100_000];
    long.push(b'\n');
    assert!(ask(&long).starts_with("error line longer than"));
    assert_eq!(ask(b"\n"), "error empty command\n");
    assert_eq!(ask(b"\xff\xfe\n"), "error command is not UTF-8\n");
    assert_eq!(ask(b"ping\n"), "ok\n");
    assert!(ask(b"report\n").starts_with("ok {"));
    m.client().ping().unwrap();
    m.stop();
}
