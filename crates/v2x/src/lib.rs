//! edgecell v2x domain crate (work in progress).
#![forbid(unsafe_code)]
