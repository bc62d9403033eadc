//! A TCP stream that the server can cut from outside the SSH session.
//!
//! russh runs each session in a task of its own that dropping the session's
//! future does not stop, so a client that never finishes its handshake would keep
//! its socket until the idle timeout. Cutting the stream makes the session's next
//! (or pending) read and write fail, which ends that task and closes the socket.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Cuts one [`GuardedStream`]; clones cut the same stream.
#[derive(Debug, Clone, Default)]
pub struct StreamCutter {
    inner: Arc<CutState>,
}

#[derive(Debug, Default)]
struct CutState {
    cut: AtomicBool,
    read_waker: Mutex<Option<Waker>>,
    write_waker: Mutex<Option<Waker>>,
}

impl StreamCutter {
    /// Makes every later and pending read or write of the stream fail.
    pub fn cut(&self) {
        self.inner.cut.store(true, Ordering::SeqCst);
        for waker in [&self.inner.read_waker, &self.inner.write_waker] {
            if let Some(waker) = waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
                waker.wake();
            }
        }
    }

    fn is_cut(&self) -> bool {
        self.inner.cut.load(Ordering::SeqCst)
    }
}

/// Cuts the stream when dropped, so a connection task that is aborted takes its session down too.
#[derive(Debug)]
pub struct CutOnDrop(pub StreamCutter);

impl Drop for CutOnDrop {
    fn drop(&mut self) {
        self.0.cut();
    }
}

/// A [`TcpStream`] whose reads and writes fail once its [`StreamCutter`] cut it.
#[derive(Debug)]
pub struct GuardedStream {
    stream: TcpStream,
    cutter: StreamCutter,
}

impl GuardedStream {
    /// Wraps `stream`; the returned cutter ends it.
    pub fn new(stream: TcpStream) -> (GuardedStream, StreamCutter) {
        let cutter = StreamCutter::default();
        let guarded = GuardedStream {
            stream,
            cutter: cutter.clone(),
        };
        (guarded, cutter)
    }

    /// Registers the waker before checking the flag, so a cut between the two still wakes this task.
    fn check(&self, waker_slot: &Mutex<Option<Waker>>, cx: &Context<'_>) -> io::Result<()> {
        *waker_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        if self.cutter.is_cut() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let state = Arc::clone(&self.cutter.inner);
        if let Err(error) = self.check(&state.read_waker, cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let state = Arc::clone(&self.cutter.inner);
        if let Err(error) = self.check(&state.write_waker, cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
