//! Minimum-cost assignment for the tracker: [`edgecell_assign::hungarian`] (shared with the
//! video tracker) with its errors as [`FusionError`].

use crate::error::{FusionError, Result};

/// Solves min Σ cost\[r\]\[c\] over one-to-one assignments of the smaller side; for each row,
/// the assigned column (`None` when there are more rows than columns and this row was left
/// out). `cost` is row-major `rows × cols`.
///
/// # Errors
/// Non-finite costs ([`FusionError::NonFinite`]) or a length that is not `rows × cols`.
pub fn hungarian(cost: &[f64], rows: usize, cols: usize) -> Result<Vec<Option<usize>>> {
    edgecell_assign::hungarian(cost, rows, cols).map_err(|e| match e {
        edgecell_assign::AssignError::NonFinite => FusionError::NonFinite("assignment cost"),
        other => FusionError::Config(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_fusion_errors() {
        assert!(matches!(hungarian(&[1.0, f64::NAN], 1, 2), Err(FusionError::NonFinite(_))));
        assert!(matches!(hungarian(&[1.0], 2, 2), Err(FusionError::Config(_))));
        assert_eq!(hungarian(&[4.0, 1.0, 2.0, 0.5], 2, 2).unwrap_or_default(), vec![Some(1), Some(0)]);
    }
}
