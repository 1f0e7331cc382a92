//! Pure statistics: Beta posteriors, fast Beta draws, credible intervals. No I/O, no clock;
//! randomness is passed in.
