//! The Gauss–Legendre panel rule behind [`super::compare_arms`], with its cumulative
//! ("spectral integration") matrix.
//!
//! One panel carries [`NODES`] Legendre points. The weights integrate polynomials of degree
//! 2·NODES − 1 exactly over the panel (Abramowitz & Stegun 25.4.29); the matrix
//! `tail[m][i]` holds ∫ from node i to the panel's right end of the m-th Lagrange basis
//! polynomial, so Σ_m tail[m][i]·f(x_m) integrates the degree-(NODES − 1) interpolant
//! through the node values from node i to the end, so a CDF can be carried *across* nodes from the
//! same density evaluations that feed the quadrature (Greengard 1991, "Spectral integration
//! and two-point boundary value problems", SIAM J. Numer. Anal. 28(4), builds the same
//! operator on Chebyshev points). That is why P(best) costs one exp per arm and node instead
//! of an incomplete-beta evaluation.

use std::sync::OnceLock;

/// Nodes per panel. 16 points integrate exp(−z²/2) over a panel two standard deviations wide
/// to about 1e-15 relative, and an exponential tail over 16 e-folds to about 1e-13.
pub(crate) const NODES: usize = 16;

/// Nodes, weights and the cumulative matrix on the reference interval [−1, 1].
#[derive(Debug)]
pub(crate) struct Rule {
    /// Legendre points x_i, ascending.
    pub(crate) nodes: [f64; NODES],
    /// Gauss weights w_i (sum to 2).
    pub(crate) weights: [f64; NODES],
    /// `tail[m][i]`: ∫_{x_i}^{1} ℓ_m(t) dt for the Lagrange basis ℓ_m of the nodes. Stored
    /// by basis function so that the product with node values is a sum of scaled rows,
    /// which the compiler vectorises (a dot product per node would not be, f64 addition not
    /// being associative).
    pub(crate) tail: [[f64; NODES]; NODES],
}

/// The rule, computed once per process (a few microseconds; the values are constants).
pub(crate) fn rule() -> &'static Rule {
    static RULE: OnceLock<Rule> = OnceLock::new();
    RULE.get_or_init(compute_rule)
}

/// Legendre P_0..=P_NODES at x by the three-term recurrence (A&S 22.7.10).
fn legendre_values(x: f64) -> [f64; NODES + 1] {
    let mut values = [0.0; NODES + 1];
    values[0] = 1.0;
    values[1] = x;
    for k in 1..NODES {
        let k_f = k as f64;
        values[k + 1] = ((2.0 * k_f + 1.0) * x * values[k] - k_f * values[k - 1]) / (k_f + 1.0);
    }
    values
}

fn compute_rule() -> Rule {
    let n = NODES as f64;
    let mut nodes = [0.0; NODES];
    let mut weights = [0.0; NODES];
    for i in 0..NODES {
        // Tricomi's initial guess, then Newton on P_n (converges in a handful of steps).
        let mut x = -(std::f64::consts::PI * (i as f64 + 0.75) / (n + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let p = legendre_values(x);
            // P_n'(x) = n (x P_n − P_{n−1}) / (x² − 1) (A&S 22.8.5).
            derivative = n * (x * p[NODES] - p[NODES - 1]) / (x * x - 1.0);
            let step = p[NODES] / derivative;
            x -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        nodes[i] = x;
        // w_i = 2 / ((1 − x_i²) P_n'(x_i)²) (A&S 25.4.29).
        weights[i] = 2.0 / ((1.0 - x * x) * derivative * derivative);
    }
    // ℓ_m(t) = Σ_k (2k+1)/2 · w_m P_k(x_m) P_k(t) for k < n (exact: discrete orthogonality of
    // the Gauss rule up to degree 2n − 1), and ∫_x^1 P_k = (P_{k−1}(x) − P_{k+1}(x))/(2k+1)
    // for k ≥ 1, ∫_x^1 P_0 = 1 − x (A&S 22.13.7 with P_k(1) = 1).
    let at_nodes: Vec<[f64; NODES + 1]> = nodes.iter().map(|&x| legendre_values(x)).collect();
    let mut tail = [[0.0; NODES]; NODES];
    for (m, row) in tail.iter_mut().enumerate() {
        let p_m = &at_nodes[m];
        for (i, entry) in row.iter_mut().enumerate() {
            let p_i = &at_nodes[i];
            let mut sum = 0.5 * (1.0 - nodes[i]);
            for k in 1..NODES {
                sum += 0.5 * p_m[k] * (p_i[k - 1] - p_i[k + 1]);
            }
            *entry = weights[m] * sum;
        }
    }
    Rule {
        nodes,
        weights,
        tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_integrate_polynomials_up_to_degree_two_n_minus_one_exactly() {
        let rule = rule();
        for degree in 0..2 * NODES {
            let quadrature: f64 = (0..NODES)
                .map(|i| rule.weights[i] * rule.nodes[i].powi(degree as i32))
                .sum();
            let exact = if degree % 2 == 1 {
                0.0
            } else {
                2.0 / (degree as f64 + 1.0)
            };
            assert!(
                (quadrature - exact).abs() < 1e-14,
                "degree {degree}: {quadrature} vs {exact}"
            );
        }
    }

    #[test]
    fn nodes_are_ascending_symmetric_and_match_the_published_extreme_node() {
        let rule = rule();
        assert!(rule.nodes.windows(2).all(|w| w[0] < w[1]));
        for i in 0..NODES {
            assert!((rule.nodes[i] + rule.nodes[NODES - 1 - i]).abs() < 1e-15);
        }
        // A&S Table 25.4, n = 16: largest abscissa 0.98940 09349 91649 93259 6.
        assert!((rule.nodes[NODES - 1] - 0.989_400_934_991_649_9).abs() < 1e-15);
        assert!((rule.weights[NODES - 1] - 0.027_152_459_411_754_095).abs() < 1e-15);
    }

    #[test]
    fn cumulative_matrix_integrates_polynomials_below_degree_n_from_each_node_to_the_end() {
        let rule = rule();
        for degree in 0..NODES {
            let k = degree as i32;
            for i in 0..NODES {
                let quadrature: f64 = (0..NODES)
                    .map(|m| rule.tail[m][i] * rule.nodes[m].powi(k))
                    .sum();
                let exact = (1.0 - rule.nodes[i].powi(k + 1)) / (k as f64 + 1.0);
                assert!(
                    (quadrature - exact).abs() < 1e-13,
                    "degree {degree}, node {i}: {quadrature} vs {exact}"
                );
            }
        }
    }
}
