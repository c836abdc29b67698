// The multishot receive path of server_io_uring: what lab 04's reader writes. main.cpp includes
// this file inside its own namespace, after the types and helpers it uses (Loop, Client,
// get_sqe, add_cancel, has_parked); lab 04 builds the same main.cpp with its exercise's copy of
// this file found first on the include path.
//
//   --recv-multishot 1 (the default): one multishot recv per connection, armed once
//     (IORING_RECV_MULTISHOT). Each arrival posts a completion with IORING_CQE_F_MORE set and a
//     buffer the kernel took from a provided-buffer ring (IOSQE_BUFFER_SELECT, group kBufGroup;
//     the buffer id is in cqe.flags >> IORING_CQE_BUFFER_SHIFT). The bytes are parsed in place
//     and the buffer goes back at the ring's tail: one SQE per request (the send), and an idle
//     connection holds no input buffer.
//   --recv-multishot 0: main.cpp's one-shot IORING_OP_RECV into the connection's own buffer,
//     submitted again after every completion: two SQEs per request, and an idle connection pins
//     its 8 KiB buffer in the kernel while the recv waits.
#pragma once

// A multishot recv from the buffer ring, prepared but not submitted; nullptr: main.cpp arms a
// one-shot recv instead.
io_uring_sqe* prep_multishot_recv(Loop& loop, Client& c) {
  io_uring_sqe* sqe = get_sqe(loop);
  io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufGroup;
  return sqe;
}

// After a turn: between requests a multishot connection needs no input buffer of its own. Never
// while a one-shot recv is armed (the kernel owns read_space() then) or a send is in flight.
void release_idle_input(Loop& loop, Client& c) {
  if (loop.shared.multishot && !c.output_busy) c.conn.release_idle_buffers();
}

// A multishot completion with bytes, in a buffer the kernel chose (IORING_CQE_F_BUFFER): to the
// core without a copy when it can take them now, else parked; then the buffer goes back.
// Backpressure: input that completes while the answers are not going out (output above its
// high-water mark, or parked input at kParkLimit) cancels the recv; main.cpp arms it again once
// the core has taken every parked byte.
void on_multishot_input(Loop& loop, Client& c, const io_uring_cqe& cqe) {
  const unsigned bid = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
  const std::string_view data(loop.bufs.buffer(bid), static_cast<std::size_t>(cqe.res));
  count(Counter::kPoolHits);
  if (!c.output_busy && !has_parked(c) && c.conn.wants_read()) {
    c.conn.on_input(data, coarse_now());  // parsed in place; leftovers are copied
  } else {
    c.parked.append(data);
  }
  iolab_recycle_buf(loop.bufs, bid);
  if (c.recv_armed && !c.recv_stopping &&
      (c.parked.size() - c.parked_off >= kParkLimit || !c.conn.wants_read())) {
    c.recv_stopping = true;
    add_cancel(loop, pack(Op::kRecv, c.slot, c.generation));
  }
}
