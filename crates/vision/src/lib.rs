//! edgecell vision domain crate (work in progress).
#![forbid(unsafe_code)]
