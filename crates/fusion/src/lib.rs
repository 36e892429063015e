//! edgecell fusion domain crate (work in progress).
#![forbid(unsafe_code)]
