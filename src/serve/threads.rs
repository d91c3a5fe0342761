//! The threads connections are served on: one per core, each running a single-threaded tokio
//! runtime, and each accepted connection served from start to end on one of them (the one with
//! the fewest open connections), as nginx's workers do.
//!
//! Why: on tokio's shared runtime a connection's task runs on whichever worker polled its
//! socket's readiness, so a request's socket, buffers and allocations move between the cores
//! from one request to the next, and the work-stealing worker is woken to take them. Kept on one
//! thread, with its socket registered with that thread's own event loop, a request stays in one
//! core's caches (bench/analysis.md: callbacks and lookups both gained).
//!
//! Work a request starts as a task of its own (an exchange that outlives its caller) runs on the
//! same thread; the threads stop once the `ConnectionThreads` is dropped, which the application
//! does only after those tasks have had their grace period.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub struct ConnectionThreads {
    threads: Vec<ConnectionThread>,
}

struct ConnectionThread {
    runtime: Handle,
    /// Connections open on this thread, to pick the least loaded.
    open: Arc<AtomicUsize>,
    /// Dropped with the `ConnectionThreads`: the thread then ends, dropping what still runs on it.
    _stop: oneshot::Sender<()>,
}

impl ConnectionThreads {
    /// Starts one thread per core the process may use.
    pub fn per_core() -> io::Result<Self> {
        Self::start(std::thread::available_parallelism().map_or(1, usize::from))
    }

    pub fn start(count: usize) -> io::Result<Self> {
        let threads = (0..count.max(1))
            .map(|index| {
                let runtime = Builder::new_current_thread().enable_all().build()?;
                let handle = runtime.handle().clone();
                let (stop, stopped) = oneshot::channel::<()>();
                std::thread::Builder::new()
                    .name(format!("connections-{index}"))
                    .spawn(move || {
                        // Returns once the sender is dropped; the runtime is then dropped here,
                        // outside any async context, with the tasks still on it.
                        let _ = runtime.block_on(stopped);
                    })?;
                Ok(ConnectionThread {
                    runtime: handle,
                    open: Arc::default(),
                    _stop: stop,
                })
            })
            .collect::<io::Result<_>>()?;
        Ok(Self { threads })
    }

    /// Serves an accepted connection on the thread with the fewest open connections: `serve`
    /// gets the socket registered with that thread's event loop.
    pub fn serve<S, F>(&self, socket: std::net::TcpStream, serve: S)
    where
        S: FnOnce(tokio::net::TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let thread = self
            .threads
            .iter()
            .min_by_key(|thread| thread.open.load(Ordering::Relaxed))
            .expect("at least one thread");
        let open = OpenConnection::new(Arc::clone(&thread.open));
        thread.runtime.spawn(async move {
            let _open = open;
            match tokio::net::TcpStream::from_std(socket) {
                Ok(socket) => serve(socket).await,
                Err(error) => tracing::warn!(%error, "cannot serve an accepted connection"),
            }
        });
    }
}

/// Counts a connection as open on its thread until it ends (or its task is dropped).
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;

    use tokio::io::AsyncReadExt;

    use super::*;

    /// A connected pair of sockets: the server's end, to hand to the threads, and the client's.
    fn connection() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (server, client)
    }

    #[test]
    fn connections_go_to_the_least_loaded_thread_and_stay_there_while_open() {
        let threads = ConnectionThreads::start(2).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut clients = Vec::new();
        let (done, finished) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let (server, client) = connection();
            clients.push(client);
            let (placed, done) = (Arc::clone(&seen), done.clone());
            threads.serve(server, move |mut socket| async move {
                let name = || std::thread::current().name().unwrap().to_owned();
                let first = name();
                placed.lock().unwrap().push(first.clone());
                // Reads until the client closes: the connection stays open meanwhile.
                let mut rest = Vec::new();
                socket.read_to_end(&mut rest).await.unwrap();
                done.send((first, name())).unwrap();
            });
            // Each is counted before the next is placed.
            while seen.lock().unwrap().len() < clients.len() {
                std::thread::yield_now();
            }
        }
        let mut placed = seen.lock().unwrap().clone();
        placed.sort();
        assert_eq!(
            placed,
            [
                "connections-0",
                "connections-0",
                "connections-1",
                "connections-1"
            ]
        );
        drop(clients);
        for _ in 0..4 {
            let (first, last) = finished.recv().unwrap();
            assert_eq!(first, last, "a connection moved to another thread");
        }
    }

    #[test]
    fn dropping_the_threads_ends_what_still_runs_on_them() {
        let threads = ConnectionThreads::start(1).unwrap();
        let (server, _client) = connection();
        let (started, running) = std::sync::mpsc::channel();
        let (ended, gone) = std::sync::mpsc::channel::<()>();
        threads.serve(server, move |_socket| async move {
            // Dropped with the task: its sender's end tells the test.
            let _ended = ended;
            started.send(()).unwrap();
            std::future::pending::<()>().await;
        });
        running.recv().unwrap();
        drop(threads);
        assert!(
            gone.recv().is_err(),
            "the task was dropped, and nothing was sent"
        );
    }
}
