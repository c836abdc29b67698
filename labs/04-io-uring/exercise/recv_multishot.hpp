// Lab 04's exercise: the multishot receive path of server_io_uring. The lab builds the real
// servers/io_uring/main.cpp with this file in place of servers/io_uring/recv/recv_multishot.hpp
// (the reference). main.cpp includes it inside its own namespace, after what it uses: Loop,
// Client (fd, output_busy, parked, parked_off, recv_armed, recv_stopping, slot, generation,
// conn), get_sqe(), add_cancel(), pack(), has_parked(), kBufGroup, kParkLimit, and ring.hpp's
// iolab_recycle_buf(). Until part 1 is done every recv is one-shot, whatever --recv-multishot
// says.
#pragma once

// EXERCISE (lab 04), part 1: when loop.shared.multishot, main.cpp asks for a multishot recv:
// take an SQE (get_sqe), prepare it with io_uring_prep_recv_multishot (no buffer of its own),
// set IOSQE_BUFFER_SELECT and buf_group kBufGroup, and return it (main.cpp submits it).
// Returning nullptr makes main.cpp arm a one-shot recv instead, as the starter does.
io_uring_sqe* prep_multishot_recv(Loop& loop, Client& c) {
  (void)loop;
  (void)c;
  return nullptr;
}

// EXERCISE (lab 04), part 2: with a multishot recv the connection needs no input buffer of its
// own between requests: give it back here (c.conn.release_idle_buffers()) when multishot and
// no send is in flight. Never while a one-shot recv is armed: the kernel owns read_space() then.
void release_idle_input(Loop& loop, Client& c) {
  (void)loop;
  (void)c;
}

// EXERCISE (lab 04), part 3: a multishot completion carries a buffer the kernel chose
// (IORING_CQE_F_BUFFER; its id is cqe.flags >> IORING_CQE_BUFFER_SHIFT, its cqe.res bytes are at
// loop.bufs.buffer(bid)). Hand them to the core without a copy (c.conn.on_input) when it can
// take them now (no send in flight, nothing parked, c.conn.wants_read()), else append them to
// c.parked; count(Counter::kPoolHits); give the buffer back (iolab_recycle_buf). Then apply
// backpressure: while the recv is armed and no cancel is on its way, cancel it (add_cancel of
// pack(Op::kRecv, c.slot, c.generation), and set c.recv_stopping) once parked input reaches
// kParkLimit or the core stops wanting input.
void on_multishot_input(Loop& loop, Client& c, const io_uring_cqe& cqe) {
  (void)loop;
  (void)c;
  (void)cqe;
}
