package replicate

// TestClusters is the package's shared cluster pair, for its external
// tests (package replicate_test): they may import replicate/metrics,
// which imports replicate.
var TestClusters = &clusters
