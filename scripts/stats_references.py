#!/usr/bin/env python3
"""High-precision references for the `stats` tests (P(best), expected loss, ln B).

Usage:  python3 scripts/stats_references.py            (needs mpmath: pip install mpmath)

Everything is computed with mpmath at mp.dps = 30 (ln B at 40), independently of the Rust
code (which integrates on the logit scale with a spectral cumulative matrix in f64):

* ln B(a, b): mp.log(mp.beta(a, b)).
* Two arms: Evan Miller's closed form, P(X_B > X_A) =
  sum_{i=0}^{aB-1} B(aA+i, bA+bB) / ((bB+i) B(1+i, bB) B(aA, bA)), integer aB, summed
  exactly in mpmath; expected loss by the identity
  E[max(X-Y,0)] = a/(a+b) P(X'>Y) - c/(c+d) P(X>Y'), X' ~ Beta(a+1,b), Y' ~ Beta(c+1,d).
* Guardrail P(worse): P(X > (1+d) Y) or P(X < (1-d) Y) by mp.quad over Y's density times
  mpmath's regularized betainc of X at c*y, breakpoints at Y's mean +- t sd and at X's
  mean +- t sd divided by c.
* K arms, small shapes ("betainc" method; slow beyond a few arms): mp.quad over [0, 1] with breakpoints at every
  arm's mean +- t sd, of f_k(x) prod_{j!=k} I_x(a_j, b_j) (P(best)) and of
  1 - prod_j I_x(a_j, b_j) (E[max]), with mpmath's regularized betainc (hypergeometric).
* K arms, large shapes ("cumulative" method; mpmath's betainc does not converge for shapes
  ~1e5+): composite 40-point Gauss-Legendre on segments one sd wide around every arm, the
  CDFs at each node by a second Gauss-Legendre integral of the density from the segment
  start, anchored by the cumulative segment integrals. Segments whose contribution is
  provably below 1e-35 are skipped. The script prints the difference between two
  resolutions (segments halved) as the reference's own error estimate, and cross-checks the
  two K-arm methods against each other and against the closed form.
"""

import mpmath as mp

mp.mp.dps = 30


def log_beta_references():
    print("== log_beta (mp.dps = 40)")
    with mp.workdps(40):
        for a, b in [(1, 1), (2, 3), (0.5, 0.5), (3, 12), (1, 10**7), (1001, 9001),
                     (50001, 950001), (10**7, 10**7)]:
            a, b = mp.mpf(a), mp.mpf(b)
            log_beta = mp.log(mp.beta(a, b))
            # The logit-scale normaliser a ln p + b ln q - ln B(a, b), p = a/(a+b) = 1 - q.
            norm = a * mp.log(a / (a + b)) + b * mp.log(b / (a + b)) - log_beta
            print(f"ln B({a}, {b}) = {mp.nstr(log_beta, 20)}  ln_norm = {mp.nstr(norm, 20)}")


def miller_p_b_beats_a(a_a, b_a, a_b, b_b):
    """Evan Miller, "Formulas for Bayesian A/B testing" (2015): P(X_B > X_A), integer a_b."""
    total = mp.mpf(0)
    log_b_a = mp.log(mp.beta(a_a, b_a))
    for i in range(int(a_b)):
        total += mp.exp(mp.log(mp.beta(a_a + i, b_a + b_b)) - mp.log(b_b + i)
                        - mp.log(mp.beta(1 + i, b_b)) - log_b_a)
    return total


def two_arm_references():
    print("== two arms: Evan Miller closed form (dps 30)")
    cases = [((2, 3), (3, 2)), ((11, 91), (16, 86)), ((101, 901), (121, 881)),
             ((1001, 9001), (1101, 8901))]
    for (a, b), (c, d) in cases:
        p = miller_p_b_beats_a(a, b, c, d)
        # Loss of choosing A: E[max(Y - X, 0)] with X=A~Beta(a,b), Y=B~Beta(c,d).
        loss_a = (mp.mpf(c) / (c + d) * miller_p_b_beats_a(a, b, c + 1, d)
                  - mp.mpf(a) / (a + b) * miller_p_b_beats_a(a + 1, b, c, d))
        loss_b = loss_a - (mp.mpf(c) / (c + d) - mp.mpf(a) / (a + b))
        print(f"A=Beta({a},{b}) B=Beta({c},{d}): P(B best) = {mp.nstr(p, 20)}"
              f"  loss(A) = {mp.nstr(loss_a, 20)}  loss(B) = {mp.nstr(loss_b, 20)}")


def pdf(a, b):
    log_norm = mp.log(mp.beta(a, b))
    return lambda x: mp.exp((a - 1) * mp.log(x) + (b - 1) * mp.log1p(-x) - log_norm) \
        if 0 < x < 1 else mp.mpf(0)


def mean_sd(a, b):
    a, b = mp.mpf(a), mp.mpf(b)
    s = a + b
    return a / s, mp.sqrt(a * b / (s * s * (s + 1)))


def breakpoints(arms, offsets):
    points = {mp.mpf(0), mp.mpf(1)}
    for a, b in arms:
        mean, sd = mean_sd(a, b)
        for t in offsets:
            x = mean + t * sd
            if 0 < x < 1:
                points.add(x)
    return sorted(points)


def by_betainc(arms):
    """P(best) and E[max] by mp.quad with mpmath's betainc (moderate shapes)."""
    points = breakpoints(arms, [-16, -8, -4, -2, -1, 0, 1, 2, 4, 8, 16])
    cdfs = [lambda x, a=a, b=b: mp.betainc(a, b, 0, x, regularized=True) for a, b in arms]
    pdfs = [pdf(a, b) for a, b in arms]
    prob_best = []
    for k in range(len(arms)):
        def integrand(x, k=k):
            value = pdfs[k](x)
            for j, cdf in enumerate(cdfs):
                if j != k:
                    value *= cdf(x)
            return value
        prob_best.append(mp.quad(integrand, points))
    expected_max = mp.quad(lambda x: 1 - mp.fprod(cdf(x) for cdf in cdfs), points)
    return prob_best, expected_max


def by_cumulative(arms, halvings=0, span=40, order=40):
    """P(best) and E[max] by composite Gauss-Legendre with cumulative CDFs (any shapes >= 1)."""
    offsets = [t / 2**halvings for t in range(-span * 2**halvings, span * 2**halvings + 1)]
    points = breakpoints(arms, offsets)
    nodes, weights = zip(*mp.calculus.quadrature.GaussLegendre(mp.mp).calc_nodes(
        # calc_nodes(degree) gives 3*2^(degree-1) nodes; degree 4 -> 24, 5 -> 48.
        5 if order > 24 else 4, mp.mp.prec))
    pdfs = [pdf(a, b) for a, b in arms]

    def gl(f, lo, hi):
        half, mid = (hi - lo) / 2, (hi + lo) / 2
        return half * mp.fsum(w * f(mid + half * t) for t, w in zip(nodes, weights))

    k_arms = len(arms)
    cdf_at = [[mp.mpf(0)] for _ in arms]  # CDF at each breakpoint
    for lo, hi in zip(points, points[1:]):
        for j in range(k_arms):
            cdf_at[j].append(cdf_at[j][-1] + gl(pdfs[j], lo, hi))
    prob_best = [mp.mpf(0)] * k_arms
    expected_max = mp.mpf(0)
    negligible = mp.mpf("1e-35")
    for i, (lo, hi) in enumerate(zip(points, points[1:])):
        lower = [cdf_at[j][i] for j in range(k_arms)]
        upper = [cdf_at[j][i + 1] for j in range(k_arms)]
        if mp.fprod(upper) < negligible:
            expected_max += hi - lo
            continue
        if all(1 - v < negligible for v in lower):
            continue
        half, mid = (hi - lo) / 2, (hi + lo) / 2
        for t, w in zip(nodes, weights):
            x = mid + half * t
            cdf = [lower[j] + gl(pdfs[j], lo, x) for j in range(k_arms)]
            expected_max += half * w * (1 - mp.fprod(cdf))
            for k in range(k_arms):
                others = mp.fprod(cdf[j] for j in range(k_arms) if j != k)
                prob_best[k] += half * w * pdfs[k](x) * others
    return prob_best, expected_max


def report(name, arms, method):
    prob_best, expected_max = method(arms)
    print(f"-- {name}: {arms}")
    print("   prob_best     = [" + ", ".join(mp.nstr(p, 17) for p in prob_best) + "]")
    losses = [expected_max - mean_sd(a, b)[0] for a, b in arms]
    print("   expected_loss = [" + ", ".join(mp.nstr(v, 17) for v in losses) + "]")
    print(f"   sum(prob_best) - 1 = {mp.nstr(mp.fsum(prob_best) - 1, 3)}")
    return prob_best, expected_max


def max_diff(first, second):
    (p1, e1), (p2, e2) = first, second
    return max([abs(x - y) for x, y in zip(p1, p2)] + [abs(e1 - e2)])


SMALL_THREE = [(3, 7), (4, 6), (2, 8)]
MIXED_TEN = [(1, 1), (3, 7), (12, 90), (30, 270), (101, 901), (95, 905), (1001, 9001),
             (980, 9020), (2, 30), (50, 450)]
LARGE_FOUR = [(50001, 950001), (50201, 949801), (500001, 9500001), (500301, 9499701)]
JEFFREYS_THREE = [(0.5, 200.5), (1.5, 300.5), (0.5, 0.5)]


def k_arm_references():
    print("== K arms (dps 30)")
    small = report("K=3 small counts (betainc)", SMALL_THREE, by_betainc)
    report("K=3 Jeffreys shapes below 1 (betainc)", JEFFREYS_THREE, by_betainc)
    report("K=10 mixed counts (cumulative)", MIXED_TEN, by_cumulative)
    large = report("K=4 counts 1e6 and 1e7 (cumulative)", LARGE_FOUR, by_cumulative)
    print("== self-checks of the reference methods")
    print(f"K=3 small: betainc vs cumulative: {mp.nstr(max_diff(small, by_cumulative(SMALL_THREE)), 3)}")
    p, _ = by_cumulative([(1001, 9001), (1101, 8901)])
    closed = miller_p_b_beats_a(1001, 9001, 1101, 8901)
    print(f"two arms (1001,9001) vs (1101,8901): cumulative vs Miller: {mp.nstr(abs(p[1] - closed), 3)}")
    finer = by_cumulative(LARGE_FOUR, halvings=1)
    print(f"K=4 large: cumulative vs cumulative with halved segments: {mp.nstr(max_diff(large, finer), 3)}")


def srm_references():
    print("== srm: chi-square survival function (dps 30)")
    for statistic, dof in [(100, 1), (3.841, 1), (5.991, 2), (13.816, 2)]:
        p = mp.gammainc(mp.mpf(dof) / 2, mp.mpf(statistic) / 2, mp.inf, regularized=True)
        print(f"P(chi2({dof}) > {statistic}) = {mp.nstr(p, 20)}")
    # tests/api/exposures.rs: a frontend that confirms 200 renders of `a` and 0 of `b` under a
    # 50/50 allocation: X2 = (200 - 100)^2/100 * 2 = 200; one that confirms 200 of `a` and 100
    # of `b`: X2 = (200 - 150)^2/150 * 2 = 100/3.
    # tests/api/exposures_per_request.rs: a healthy frontend that loses a few confirmations of
    # either arm alike, 180 of `a` and 177 of `b` confirmed under 50/50: X2 = 2 * 1.5^2/178.5.
    healthy = 2 * mp.mpf(3) ** 2 / 4 / (mp.mpf(357) / 2)
    for label, statistic in [("drop all b", mp.mpf(200)), ("drop half of b", mp.mpf(100) / 3),
                             ("healthy 180/177", healthy)]:
        p = mp.gammainc(mp.mpf(1) / 2, statistic / 2, mp.inf, regularized=True)
        print(f"{label}: P(chi2(1) > {mp.nstr(statistic, 20)}) = {mp.nstr(p, 20)}")


# Delay-aware posteriors (src/stats/delay.rs). Delay bins: edges 0, 1, 2, 5, 10, 20, 30, 45, 60
# minutes, then hourly; a 3 h window has 10 bins. The arm: at now = 10 h, 2000 exposures of
# which 300, 300, 400 were assigned in hour bins 7, 8, 9 (spread uniformly over each hour, so
# their ages span [2 h, 3 h], [1 h, 2 h], [0, 1 h]) and the rest before; conversions by delay
# bin as below.
DELAY_EDGES = [mp.mpf(m) / 60 for m in (0, 1, 2, 5, 10, 20, 30, 45, 60)] + [mp.mpf(2), mp.mpf(3)]
DELAY_CONVERSIONS = [5, 4, 6, 5, 6, 5, 4, 5, 15, 5]
DELAY_COHORTS = [((2, 3), 300), ((1, 2), 300), ((0, 1), 400)]
DELAY_COMPLETE = 1000
DELAY_KAPPA = 20


def delay_exposure_time():
    """M_j: the exposures' mean share of bin j lived through, integrated by mp.quad."""
    times = []
    for j in range(len(DELAY_EDGES) - 1):
        e0, e1 = DELAY_EDGES[j], DELAY_EDGES[j + 1]

        def ramp(a):
            return min(max((a - e0) / (e1 - e0), 0), 1)
        total = mp.mpf(DELAY_COMPLETE)
        for (a0, a1), count in DELAY_COHORTS:
            points = sorted({mp.mpf(a0), mp.mpf(a1)} | {e for e in (e0, e1) if a0 < e < a1})
            total += count * mp.quad(ramp, points) / (a1 - a0)
        times.append(total)
    return times


def exponential_bins(median, window=3):
    """P(delay in bin j | delay <= window) for an exponential with this median (hours)."""
    rate = mp.log(2) / median
    whole = 1 - mp.exp(-rate * window)
    edges = DELAY_EDGES
    return [(mp.exp(-rate * edges[j]) - mp.exp(-rate * edges[j + 1])) / whole
            for j in range(len(edges) - 1)]


def dirichlet_mode(conversions, exposure_time, base, kappa):
    """Maximises sum_j D_j ln(theta f_j) - theta sum_j f_j M_j + kappa sum_j g_j ln f_j over
    theta > 0 and the simplex, by Newton's method on its Lagrange conditions (mp.findroot),
    then checks that nearby points on the simplex score lower."""
    n = len(conversions)

    def objective(theta, f):
        return (sum(d * mp.log(theta * fj) for d, fj in zip(conversions, f))
                - theta * sum(fj * m for fj, m in zip(f, exposure_time))
                + kappa * sum(g * mp.log(fj) for g, fj in zip(base, f)))

    def equations(*x):
        f, theta, mu = x[:n], x[n], x[n + 1]
        eqs = [(conversions[j] + kappa * base[j]) / f[j] - theta * exposure_time[j] - mu
               for j in range(n)]
        eqs.append(sum(f) - 1)
        eqs.append(sum(conversions) / theta - sum(fj * m for fj, m in zip(f, exposure_time)))
        return eqs

    start = list(base) + [mp.mpf(sum(conversions)) / exposure_time[0], mp.mpf(kappa)]
    root = mp.findroot(equations, start)
    f, theta = [root[j] for j in range(n)], root[n]
    best = objective(theta, f)
    for j in range(n):
        for k in range(n):
            if j != k:
                moved = list(f)
                moved[j] += mp.mpf("1e-6")
                moved[k] -= mp.mpf("1e-6")
                assert objective(theta, moved) < best
    return f, theta


def delay_references():
    print("== delay: Dirichlet posterior mode of the bin probabilities (dps 30)")
    base = exponential_bins(mp.mpf(1))
    exposure_time = delay_exposure_time()
    print("exposure time per bin:", [mp.nstr(m, 20) for m in exposure_time])
    pooled, theta = dirichlet_mode(DELAY_CONVERSIONS, exposure_time, base, DELAY_KAPPA)
    print("experiment law:", [mp.nstr(p, 20) for p in pooled], "theta", mp.nstr(theta, 20))

    def profile(log_median):
        p = exponential_bins(mp.exp(log_median))
        spent = sum(pj * m for pj, m in zip(p, exposure_time))
        return (sum(d * mp.log(pj) for d, pj in zip(DELAY_CONVERSIONS, p))
                - sum(DELAY_CONVERSIONS) * mp.log(spent))

    log_median = mp.findroot(lambda x: mp.diff(profile, x), mp.log(1))
    print("exponential maximum-likelihood median (h):", mp.nstr(mp.exp(log_median), 20))
    # The arm's median: its own fit shrunk toward the experiment's (1 h) on the log scale,
    # weights 60 conversions against 20 pseudo-conversions; its law: the Dirichlet mode with
    # that exponential as base.
    own = sum(DELAY_CONVERSIONS)
    arm_median = mp.exp((own * log_median + DELAY_KAPPA * mp.log(1)) / (own + DELAY_KAPPA))
    print("arm median (h):", mp.nstr(arm_median, 20))
    arm, theta = dirichlet_mode(DELAY_CONVERSIONS, exposure_time, exponential_bins(arm_median),
                                DELAY_KAPPA)
    print("arm law:", [mp.nstr(p, 20) for p in arm], "theta", mp.nstr(theta, 20))
    # Pending exposures of the arm: sum over cohorts of count * (1 - mean of G over its ages),
    # G the arm law's piecewise-linear CDF, the mean by mp.quad.
    cdf = [mp.mpf(0)]
    for p in arm:
        cdf.append(cdf[-1] + p)

    def g(a):
        for j in range(len(arm)):
            if a <= DELAY_EDGES[j + 1]:
                return cdf[j] + arm[j] * (a - DELAY_EDGES[j]) / (DELAY_EDGES[j + 1] - DELAY_EDGES[j])
        return mp.mpf(1)
    pending = 0
    for (a0, a1), count in DELAY_COHORTS:
        points = [e for e in DELAY_EDGES if a0 <= e <= a1]
        pending += count * (1 - mp.quad(g, points) / (a1 - a0))
    print("pending exposures:", mp.nstr(pending, 20))


def guardrail_references():
    """P(X > (1+d) Y) and P(X < (1-d) Y), X ~ Beta(a1, b1) the arm, Y ~ Beta(a2, b2) the
    reference: mp.quad over y of the Beta(a2, b2) density times mpmath's regularized
    betainc of X at c*y, with breakpoints at Y's mean +- t sd and at the mean of X over c."""
    print("== guardrail P(worse): arm, reference, harm, delta (dps 30)")
    cases = [((2, 3), (3, 2), "higher", 0.0), ((11, 991), (21, 981), "higher", 0.1),
             ((21, 981), (11, 991), "higher", 0.1), ((101, 9901), (51, 9951), "higher", 0.2),
             ((60, 4941), (50, 4951), "lower", 0.05), ((0.5, 0.5), (1, 1), "higher", 1.0),
             ((31, 2971), (21, 2981), "higher", 0.25),
             ((40, 61), (55, 46), "lower", 0.1), ((3, 997), (1, 1), "higher", 0.3)]
    for (a1, b1), (a2, b2), harm, d in cases:
        a1, b1, a2, b2, d = map(mp.mpf, (a1, b1, a2, b2, d))
        c = 1 + d if harm == "higher" else 1 - d
        top = min(mp.mpf(1), 1 / c)
        mean_y = a2 / (a2 + b2)
        sd_y = mp.sqrt(a2 * b2 / ((a2 + b2) ** 2 * (a2 + b2 + 1)))
        mean_x = a1 / (a1 + b1)
        sd_x = mp.sqrt(a1 * b1 / ((a1 + b1) ** 2 * (a1 + b1 + 1)))
        points = {mp.mpf(0), top}
        for t in range(-12, 13):
            for p in (mean_y + t * sd_y, (mean_x + t * sd_x) / c):
                if 0 < p < top:
                    points.add(p)
        points = sorted(points)
        log_b2 = mp.log(mp.beta(a2, b2))

        def integrand(y):
            if y <= 0 or y >= 1:
                return mp.mpf(0)
            dens = mp.exp((a2 - 1) * mp.log(y) + (b2 - 1) * mp.log(1 - y) - log_b2)
            t = c * y
            if harm == "higher":
                tail = mp.betainc(a1, b1, t, 1, regularized=True)
            else:
                tail = mp.betainc(a1, b1, 0, t, regularized=True)
            return dens * tail

        p = mp.quad(integrand, points)
        print(f"(({a1}, {b1}), ({a2}, {b2}), Harm::{harm}, {d}) => {mp.nstr(p, 20)}")


if __name__ == "__main__":
    delay_references()
    log_beta_references()
    srm_references()
    two_arm_references()
    k_arm_references()
    guardrail_references()
