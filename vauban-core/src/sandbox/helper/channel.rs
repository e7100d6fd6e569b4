//! The channel between vauban and its sandbox helpers: a Unix stream socket
//! carrying length-prefixed JSON messages, each of which may carry file
//! descriptors (`SCM_RIGHTS`, for the pty of an interactive run).
//!
//! Both ends are our own code, but the reader never trusts a frame: the length
//! is checked against a cap before anything is allocated, and a short or
//! malformed frame is an error, never a panic or an overflow.

use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{de::DeserializeOwned, Serialize};

/// The largest message accepted (a job names paths; nothing near this).
pub(crate) const MAX_MESSAGE: usize = 16 << 20;

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChannelError {
    /// The socket failed.
    #[error("sandbox channel: {0}")]
    Io(#[from] std::io::Error),
    /// A frame announced more than [`MAX_MESSAGE`] bytes.
    #[error("sandbox channel: a message of {0} bytes, more than accepted")]
    TooLarge(u64),
    /// A frame did not hold the JSON of a message.
    #[error("sandbox channel: malformed message")]
    Malformed(#[source] serde_json::Error),
}

/// One end of the channel.
#[derive(Debug)]
pub(crate) struct Channel {
    fd: OwnedFd,
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    eof: bool,
}

/// A connected pair of channel ends, both close-on-exec.
pub(crate) fn pair() -> std::io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel::new(a), Channel::new(b)))
}

impl Channel {
    /// Wraps a connected stream socket.
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Channel {
            fd,
            buf: Vec::new(),
            fds: VecDeque::new(),
            eof: false,
        }
    }

    /// The socket, e.g. to poll it or hand it to a child.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Takes the socket back (to pass it to a child as a given descriptor number).
    pub(crate) fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sends one message, with `fds` attached to it.
    pub(crate) fn send<T: Serialize>(&self, msg: &T, fds: &[RawFd]) -> Result<(), ChannelError> {
        let body = serde_json::to_vec(msg).map_err(ChannelError::Malformed)?;
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        let mut sent = 0;
        while sent < frame.len() {
            let iov = [IoSlice::new(&frame[sent..])];
            let cmsgs = [ControlMessage::ScmRights(fds)];
            let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !fds.is_empty() {
                &cmsgs
            } else {
                &[]
            };
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => sent += n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ChannelError::Io(e.into())),
            }
        }
        Ok(())
    }

    /// Receives the next message; `None` once the other end closed the socket
    /// between messages. Blocks until a whole message is there.
    pub(crate) fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ChannelError> {
        loop {
            if let Some(msg) = self.take_frame()? {
                return Ok(Some(msg));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(ChannelError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.fill()?;
        }
    }

    /// A whole message already received, if any (never blocks).
    pub(crate) fn try_recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ChannelError> {
        self.take_frame()
    }

    /// Reads what the socket has (blocking until something or EOF arrives); used
    /// after a poll said it is readable. Returns false at EOF.
    pub(crate) fn fill(&mut self) -> Result<bool, ChannelError> {
        let mut data = vec![0u8; 64 * 1024];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        loop {
            let mut iov = [IoSliceMut::new(&mut data)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let n = msg.bytes;
                    for cmsg in msg.cmsgs().map_err(|e| ChannelError::Io(e.into()))? {
                        if let ControlMessageOwned::ScmRights(received) = cmsg {
                            for fd in received {
                                // SAFETY: the kernel just gave us this descriptor
                                // (SCM_RIGHTS): nothing else owns it.
                                #[allow(unsafe_code)]
                                self.fds.push_back(unsafe { OwnedFd::from_raw_fd(fd) });
                            }
                        }
                    }
                    if n == 0 {
                        self.eof = true;
                        return Ok(false);
                    }
                    self.buf.extend_from_slice(&data[..n]);
                    return Ok(true);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ChannelError::Io(e.into())),
            }
        }
    }

    /// The next descriptor received with a message, in order.
    pub(crate) fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    fn take_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ChannelError> {
        let Some(len) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        if len > MAX_MESSAGE {
            return Err(ChannelError::TooLarge(len as u64));
        }
        let Some(end) = 4usize.checked_add(len) else {
            return Err(ChannelError::TooLarge(len as u64));
        };
        if self.buf.len() < end {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&self.buf[4..end]).map_err(ChannelError::Malformed);
        self.buf.drain(..end);
        msg.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_descriptors_cross() {
        let (a, mut b) = pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        a.send(&vec![1u32, 2, 3], &[file.as_raw_fd()]).unwrap();
        a.send(&"second".to_string(), &[]).unwrap();
        drop(a);
        assert_eq!(b.recv::<Vec<u32>>().unwrap(), Some(vec![1, 2, 3]));
        assert!(b.take_fd().is_some());
        assert_eq!(b.recv::<String>().unwrap().as_deref(), Some("second"));
        assert_eq!(b.recv::<String>().unwrap(), None);
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        use std::io::Write;
        let (a, mut b) = pair().unwrap();
        let mut raw = std::fs::File::from(a.into_fd());
        raw.write_all(&u32::MAX.to_le_bytes()).unwrap();
        assert!(matches!(
            b.recv::<u32>(),
            Err(ChannelError::TooLarge(n)) if n == u32::MAX as u64
        ));

        let (a, mut b) = pair().unwrap();
        let mut raw = std::fs::File::from(a.into_fd());
        raw.write_all(&10u32.to_le_bytes()).unwrap();
        raw.write_all(b"12").unwrap();
        drop(raw);
        assert!(b.recv::<u32>().is_err(), "a cut frame must not parse");

        let (a, mut b) = pair().unwrap();
        let mut raw = std::fs::File::from(a.into_fd());
        raw.write_all(&3u32.to_le_bytes()).unwrap();
        raw.write_all(b"}}}").unwrap();
        assert!(matches!(b.recv::<u32>(), Err(ChannelError::Malformed(_))));
    }
}
