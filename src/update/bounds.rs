//! The `[limits]` bounds (SPEC 13) the write transaction holds every update to:
//! a rule of the pipeline, read from the configuration.

/// `[limits]` (SPEC 13): bounds on how far one user's data may grow; `0` = no
/// limit. Checked by the update's write transaction and by `domain add`/`import`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// The domain and the names below it that hold records.
    pub names_per_domain: u64,
    /// Records of one family on one name.
    pub records_per_name: u64,
    /// Domains one user may hold (the CLI's `--force` overrides).
    pub domains_per_user: u64,
}

impl Bounds {
    /// No bound at all (`0` everywhere).
    pub const NONE: Bounds = Bounds {
        names_per_domain: 0,
        records_per_name: 0,
        domains_per_user: 0,
    };

    /// Whether `count` lies over `limit` (`0`: nothing does).
    pub fn over(limit: u64, count: u64) -> bool {
        limit != 0 && count > limit
    }
}
