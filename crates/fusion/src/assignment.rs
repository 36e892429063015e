//! Minimum-cost assignment (Hungarian / Kuhn–Munkres with potentials, O(n²·m)) for rectangular
//! `f64` cost matrices.

use crate::error::{FusionError, Result};

/// Solves min Σ cost\[r\]\[c\] over one-to-one assignments of the smaller side.
/// Returns, for each row, the assigned column (`None` if there are more rows than columns and
/// this row was left out). `cost` is row-major `rows × cols`.
///
/// # Errors
/// Non-finite costs or a length that is not `rows × cols`.
pub fn hungarian(cost: &[f64], rows: usize, cols: usize) -> Result<Vec<Option<usize>>> {
    if cost.len() != rows * cols {
        return Err(FusionError::Config(format!("cost matrix has {} entries, expected {rows}×{cols}", cost.len())));
    }
    if cost.iter().any(|v| !v.is_finite()) {
        return Err(FusionError::NonFinite("assignment cost"));
    }
    if rows == 0 || cols == 0 {
        return Ok(vec![None; rows]);
    }
    if rows > cols {
        // solve the transpose, then invert the mapping
        let t: Vec<f64> = (0..cols * rows).map(|i| cost.get((i % rows) * cols + i / rows).copied().unwrap_or(0.0)).collect();
        let col_to_row = hungarian(&t, cols, rows)?;
        let mut out = vec![None; rows];
        for (c, r) in col_to_row.iter().enumerate() {
            if let Some(r) = r
                && let Some(slot) = out.get_mut(*r)
            {
                *slot = Some(c);
            }
        }
        return Ok(out);
    }
    let (n, m) = (rows, cols);
    let at = |i: usize, j: usize| cost.get((i - 1) * m + (j - 1)).copied().unwrap_or(0.0);
    // potentials u (rows), v (cols); p[j] = row matched to column j (1-based, 0 = none)
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = at(i0, j) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            if j1 == 0 {
                return Err(FusionError::Config("assignment did not converge".into()));
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n];
    for (j, &row) in p.iter().enumerate().skip(1) {
        if row > 0
            && let Some(slot) = out.get_mut(row - 1)
        {
            *slot = Some(j - 1);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(cost: &[f64], cols: usize, a: &[Option<usize>]) -> f64 {
        a.iter().enumerate().filter_map(|(r, c)| c.map(|c| cost[r * cols + c])).sum()
    }

    #[test]
    fn square_known_optimum() {
        let c = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
        let a = hungarian(&c, 3, 3).unwrap();
        assert_eq!(a, vec![Some(1), Some(0), Some(2)]);
        assert_eq!(total(&c, 3, &a), 5.0);
    }

    #[test]
    fn rectangular_both_ways_and_brute_force() {
        let c = [10.0, 19.0, 8.0, 15.0, 10.0, 18.0, 7.0, 17.0];
        // 2 × 4
        let a = hungarian(&c, 2, 4).unwrap();
        assert_eq!(total(&c, 4, &a), 17.0);
        // 4 × 2 (transpose)
        let t = [10.0, 10.0, 19.0, 18.0, 8.0, 7.0, 15.0, 17.0];
        let b = hungarian(&t, 4, 2).unwrap();
        assert_eq!(b.iter().filter(|x| x.is_some()).count(), 2);
        assert_eq!(total(&t, 2, &b), 17.0);
        // brute force on pseudo-random 4×4
        let mut s = 12345u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 100) as f64
        };
        for _ in 0..50 {
            let c: Vec<f64> = (0..16).map(|_| next()).collect();
            let a = hungarian(&c, 4, 4).unwrap();
            let mut best = f64::INFINITY;
            for p in [[0, 1, 2, 3], [0, 1, 3, 2], [0, 2, 1, 3], [0, 2, 3, 1], [0, 3, 1, 2], [0, 3, 2, 1], [1, 0, 2, 3], [1, 0, 3, 2], [1, 2, 0, 3], [1, 2, 3, 0], [1, 3, 0, 2], [1, 3, 2, 0], [2, 0, 1, 3], [2, 0, 3, 1], [2, 1, 0, 3], [2, 1, 3, 0], [2, 3, 0, 1], [2, 3, 1, 0], [3, 0, 1, 2], [3, 0, 2, 1], [3, 1, 0, 2], [3, 1, 2, 0], [3, 2, 0, 1], [3, 2, 1, 0]] {
                best = best.min((0..4).map(|r| c[r * 4 + p[r]]).sum());
            }
            assert_eq!(total(&c, 4, &a), best);
        }
    }

    #[test]
    fn bad_input() {
        assert!(hungarian(&[1.0, f64::NAN], 1, 2).is_err());
        assert!(hungarian(&[1.0], 2, 2).is_err());
        assert_eq!(hungarian(&[], 0, 3).unwrap(), Vec::<Option<usize>>::new());
        assert_eq!(hungarian(&[], 2, 0).unwrap(), vec![None, None]);
    }
}
