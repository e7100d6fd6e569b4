//! A bounded in-memory pipe between two threads: the writer fills fixed-size
//! chunks, the reader consumes them in order. Chunk buffers travel back to the
//! writer once read, so a long stream allocates only the chunks in flight and
//! memory stays flat. An error on the writing side is passed on to the reader.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes per chunk.
const CHUNK: usize = 256 * 1024;
/// Chunks queued between the two sides (so at most `DEPTH + 2` chunks live).
const DEPTH: usize = 8;

type Msg = io::Result<Vec<u8>>;

/// A new pipe: fill the [`PipeWriter`] on one thread, read the [`PipeReader`]
/// on another.
pub(crate) fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = sync_channel(DEPTH);
    let (back_tx, back_rx) = sync_channel(DEPTH + 2);
    (
        PipeWriter { tx, back: back_rx },
        PipeReader {
            rx,
            back: back_tx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        },
    )
}

/// The writing end.
pub(crate) struct PipeWriter {
    tx: SyncSender<Msg>,
    back: Receiver<Vec<u8>>,
}

impl PipeWriter {
    /// Reads `src` to its end into the pipe, one chunk at a time. Returns
    /// `Ok(false)` when the reader went away before the end (the rest of `src`
    /// is left unread), `Err` when `src` failed (the error is also passed on).
    pub(crate) fn pump(&self, src: &mut dyn Read) -> io::Result<bool> {
        loop {
            let mut buf = self.back.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let mut len = 0;
            // Fill the chunk: a reader of small pieces (a gzip member boundary,
            // a short read) still hands over full chunks.
            let end = loop {
                match src.read(&mut buf[len..]) {
                    Ok(0) => break true,
                    Ok(n) => {
                        len += n;
                        if len == CHUNK {
                            break false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // The reader sees the same failure (kind and message).
                        let copy = io::Error::new(e.kind(), e.to_string());
                        let _ = self.tx.send(Err(copy));
                        return Err(e);
                    }
                }
            };
            buf.truncate(len);
            if len > 0 && self.tx.send(Ok(buf)).is_err() {
                return Ok(false);
            }
            if end {
                return Ok(true);
            }
        }
    }
}

/// The reading end: reads the chunks in order, then end of stream once the
/// writer is dropped.
pub(crate) struct PipeReader {
    rx: Receiver<Msg>,
    back: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let old = std::mem::replace(&mut self.cur, next);
                    self.pos = 0;
                    if old.capacity() > 0 {
                        let _ = self.back.try_send(old);
                    }
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_a_long_stream_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 253) as u8).collect();
        let (w, mut r) = pipe();
        let back = std::thread::scope(|s| {
            let h = s.spawn(move || {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map(|_| v)
            });
            assert!(w.pump(&mut &data[..]).unwrap());
            drop(w);
            h.join().unwrap().unwrap()
        });
        assert_eq!(back, data);
    }

    #[test]
    fn passes_errors_on_and_notices_a_gone_reader() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt"))
            }
        }
        let (w, mut r) = pipe();
        assert!(w.pump(&mut Failing).is_err());
        let e = r.read(&mut [0; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        let (w, r) = pipe();
        drop(r);
        assert!(!w.pump(&mut &[1u8; 10][..]).unwrap());
    }
}
