//! The network stack: one `smoltcp` interface per NIC (and loopback), run
//! in thread context; sockets for the Linux layer. Being written (issue 5).
