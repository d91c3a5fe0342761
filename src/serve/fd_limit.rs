//! Fitting both listeners' connection caps under the process's open-file limit, so that a
//! flooded public listener runs into its own cap, never into `EMFILE`, and the internal
//! listener, the store and MondiaPay always have descriptors left.

use rustix::process::{Resource, getrlimit, setrlimit};

use super::threads::DESCRIPTORS_PER_THREAD;

/// Descriptors kept beside the caps for the store's connections, the process's own files and
/// sockets, on top of one per concurrent exchange (its connection to MondiaPay) and those of the
/// connection threads (`DESCRIPTORS_PER_THREAD` each).
pub const RESERVED_DESCRIPTORS: u64 = 128;

#[derive(Debug, thiserror::Error)]
#[error(
    "the open-file limit ({limit}) cannot hold internal.max_connections ({internal}) plus {reserved} descriptors kept for the store, MondiaPay and the connection threads: raise it (ulimit -n) or lower internal.max_connections"
)]
pub struct FdLimitError {
    limit: u64,
    internal: u64,
    reserved: u64,
}

/// Raises the soft open-file limit to the hard one, then returns the public cap to use: as
/// configured, or lowered (with a warning) so that public + internal + reserve fit. The
/// internal cap is never lowered: it is what keeps the service operable under a flood.
pub fn fit_connection_caps(
    public: usize,
    internal: usize,
    concurrent_exchanges: usize,
    connection_threads: usize,
) -> Result<usize, FdLimitError> {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(%error, "cannot raise the open-file limit");
        }
    }
    public_cap(
        getrlimit(Resource::Nofile).current,
        public,
        internal,
        concurrent_exchanges,
        connection_threads,
    )
}

/// The public cap that fits under `limit` (`None`: unlimited).
fn public_cap(
    limit: Option<u64>,
    public: usize,
    internal: usize,
    concurrent_exchanges: usize,
    connection_threads: usize,
) -> Result<usize, FdLimitError> {
    let Some(limit) = limit else {
        return Ok(public);
    };
    let reserved = RESERVED_DESCRIPTORS
        + concurrent_exchanges as u64
        + DESCRIPTORS_PER_THREAD * connection_threads as u64;
    let internal = internal as u64;
    let room = limit.saturating_sub(reserved + internal);
    if room == 0 {
        return Err(FdLimitError {
            limit,
            internal,
            reserved,
        });
    }
    if public as u64 > room {
        tracing::warn!(
            limit,
            configured = public,
            lowered_to = room,
            "public.max_connections does not fit under the open-file limit: lowered"
        );
        return Ok(usize::try_from(room).unwrap_or(public));
    }
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_cap_is_lowered_to_fit_and_the_internal_one_never() {
        assert_eq!(public_cap(None, 4096, 256, 64, 2).unwrap(), 4096);
        assert_eq!(public_cap(Some(1 << 20), 4096, 256, 64, 2).unwrap(), 4096);
        // 1024 - (128 + 64 + 2 × 2) - 256 = 572
        assert_eq!(public_cap(Some(1024), 4096, 256, 64, 2).unwrap(), 572);
        let error = public_cap(Some(256), 4096, 256, 64, 2)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("open-file limit (256)") && error.contains("internal.max_connections"),
            "{error}"
        );
    }
}
