// The liburing 2.3 plumbing of server_io_uring: the user_data layout, ring set-up with its flag
// fallback, and the provided-buffer ring registered by hand. Debian 12's liburing 2.3 has
// io_uring_register_buf_ring() and the buf_ring_init/add/advance helpers but not
// io_uring_setup_buf_ring() (2.4), so that part is done here, named iolab_* so it can never
// clash with a newer liburing. The model itself lives in main.cpp.
#pragma once

#include <liburing.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>

namespace iolab {

// user_data: | op 8 bits | generation 24 bits | slot 32 bits |. Slots are reused; a completion
// whose generation is not its slot's current one belongs to an earlier connection.
enum class Op : std::uint8_t {
  kAccept = 1,
  kWakeup,
  kRecv,
  kSend,
  kFileFill,
  kFileDrain,
  kCancel,
  kClose
};
inline constexpr std::uint32_t kGenerationMask = (1u << 24) - 1;

constexpr std::uint64_t pack(Op op, std::uint32_t slot = 0, std::uint32_t generation = 0) {
  return std::uint64_t{static_cast<std::uint8_t>(op)} << 56 |
         std::uint64_t{generation & kGenerationMask} << 32 | slot;
}
constexpr Op op_of(std::uint64_t ud) { return static_cast<Op>(ud >> 56); }
constexpr std::uint32_t generation_of(std::uint64_t ud) { return (ud >> 32) & kGenerationMask; }
constexpr std::uint32_t slot_of(std::uint64_t ud) { return static_cast<std::uint32_t>(ud); }

struct RingSetup {
  bool defer_taskrun;  // SINGLE_ISSUER|DEFER_TASKRUN, else COOP_TASKRUN
  bool sqpoll;         // a kernel submission thread (takes neither of the above)
  unsigned sq_entries;
  unsigned sq_thread_idle_ms;
  bool pretend_no_defer_taskrun = false;  // --fallback 1: take the -EINVAL path of an old kernel
};

// What the kernel's io_uring can do, from io_uring_get_probe(): the operations this model
// needs, and the two multishot forms, known by an operation of the same kernel release
// (multishot accept and IORING_OP_SOCKET came in 5.19, multishot recv and IORING_OP_SEND_ZC in
// 6.0). `pretend` (--fallback) hides features so every fallback runs on a new kernel too.
struct RingFeatures {
  bool probed = false;       // false: no probe at all (io_uring refused; set-up reports why)
  const char* missing = "";  // a required operation the kernel lacks: nothing works
  bool multishot_accept = true;
  bool multishot_recv = true;
};
inline constexpr unsigned kPretendNoDeferTaskrun = 1, kPretendNoMultishotRecv = 2,
                          kPretendNoMultishotAccept = 4, kPretendNothing = 8;

inline RingFeatures iolab_probe(unsigned pretend) {
  RingFeatures f;
  io_uring_probe* p = io_uring_get_probe();
  if (p == nullptr) return f;
  f.probed = true;
  struct Need {
    int op;
    const char* name;
  };
  static constexpr Need kNeeded[] = {
      {IORING_OP_ACCEPT, "IORING_OP_ACCEPT"}, {IORING_OP_RECV, "IORING_OP_RECV"},
      {IORING_OP_SEND, "IORING_OP_SEND"},     {IORING_OP_SENDMSG, "IORING_OP_SENDMSG"},
      {IORING_OP_SPLICE, "IORING_OP_SPLICE"}, {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"},
      {IORING_OP_CLOSE, "IORING_OP_CLOSE"},   {IORING_OP_READ, "IORING_OP_READ"}};
  for (const Need& n : kNeeded) {
    if (!io_uring_opcode_supported(p, n.op) || (pretend & kPretendNothing)) {
      f.missing = n.name;
      break;
    }
  }
  f.multishot_accept =
      io_uring_opcode_supported(p, IORING_OP_SOCKET) && !(pretend & kPretendNoMultishotAccept);
  f.multishot_recv =
      io_uring_opcode_supported(p, IORING_OP_SEND_ZC) && !(pretend & kPretendNoMultishotRecv);
  io_uring_free_probe(p);
  return f;
}

// Creates the ring; 0 or -errno, and the flags that worked. DEFER_TASKRUN (6.1) runs completion
// work only when this thread waits for completions, and the ring belongs to the thread that
// created it: call this from the loop's own thread. On -EINVAL (an older kernel) it falls back
// to COOP_TASKRUN (5.19): no interrupting IPI, the work runs at the next kernel entry.
inline int iolab_queue_init(io_uring& ring, const RingSetup& want, unsigned& flags_used) {
  unsigned mode = want.sqpoll          ? IORING_SETUP_SQPOLL
                  : want.defer_taskrun ? IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
                                       : IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  for (;;) {
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | mode;
    p.cq_entries = want.sq_entries * 4;  // multishot requests post many completions each
    p.sq_thread_idle = want.sq_thread_idle_ms;
    const int r = (mode & IORING_SETUP_DEFER_TASKRUN) && want.pretend_no_defer_taskrun
                      ? -EINVAL
                      : io_uring_queue_init_params(want.sq_entries, &ring, &p);
    if (r == -EINVAL && (mode & IORING_SETUP_DEFER_TASKRUN)) {
      mode = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
      continue;
    }
    if (r < 0) return r;
    flags_used = p.flags;
    // The wait carries its timeout in io_uring_getevents_arg (5.11); without it liburing would
    // queue a timeout request per wait and could enter more than once.
    if (!(p.features & IORING_FEAT_EXT_ARG)) {
      io_uring_queue_exit(&ring);
      return -EOPNOTSUPP;
    }
    io_uring_register_ring_fd(&ring);  // optional (5.18): saves a descriptor lookup per enter
    return 0;
  }
}

// Why the kernel refused io_uring (empty: not a refusal), for the exit-77 message.
inline std::string why_io_uring_refused(int err) {
  if (std::FILE* f = std::fopen("/proc/sys/kernel/io_uring_disabled", "r")) {
    int v = 0;
    const bool disabled = std::fscanf(f, "%d", &v) == 1 && v != 0;
    std::fclose(f);
    if (disabled) return "sysctl kernel.io_uring_disabled=" + std::to_string(v);
  }
  if (err == EPERM || err == ENOSYS) {
    return "refused by a seccomp filter or the kernel configuration (Docker's default seccomp "
           "profile blocks io_uring: run with --security-opt seccomp=unconfined)";
  }
  if (err == EOPNOTSUPP) return "kernel too old (needs IORING_FEAT_EXT_ARG, 5.11)";
  if (err == ENOPROTOOPT) return "kernel too old: io_uring lacks an operation this model needs";
  return {};
}

// Provided buffers: `entries` buffers the kernel takes from a ring as data arrives; the
// completion names the one it used (IORING_CQE_F_BUFFER, id in the upper 16 bits of
// cqe->flags) and the application gives it back at the tail. An empty ring ends a multishot
// recv with -ENOBUFS.
struct BufRing {
  io_uring_buf_ring* ring = nullptr;
  char* base = nullptr;
  unsigned entries = 0;
  unsigned buf_bytes = 0;
  std::size_t ring_bytes() const { return entries * sizeof(io_uring_buf); }
  std::size_t reserved_bytes() const { return ring_bytes() + std::size_t{entries} * buf_bytes; }
  char* buffer(unsigned bid) const { return base + std::size_t{bid} * buf_bytes; }
};

// Gives buffer `bid` back to the kernel.
inline void iolab_recycle_buf(BufRing& br, unsigned bid) {
  io_uring_buf_ring_add(br.ring, br.buffer(bid), br.buf_bytes, static_cast<unsigned short>(bid),
                        io_uring_buf_ring_mask(br.entries), 0);
  io_uring_buf_ring_advance(br.ring, 1);
}

// After io_uring_queue_exit(): the kernel holds its own reference to the pages it pinned.
inline void iolab_free_buf_ring(BufRing& br) {
  if (br.ring != nullptr) ::munmap(br.ring, br.ring_bytes());
  if (br.base != nullptr) ::munmap(br.base, std::size_t{br.entries} * br.buf_bytes);
  br = BufRing{};
}

// 0 or -errno. `entries` is a power of two, at most 32768.
inline int iolab_setup_buf_ring(io_uring& ring, unsigned entries, unsigned buf_bytes, int bgid,
                                BufRing& out) {
  out = BufRing{nullptr, nullptr, entries, buf_bytes};
  auto map = [](std::size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  };
  out.ring = static_cast<io_uring_buf_ring*>(map(out.ring_bytes()));  // page-aligned, as required
  out.base = static_cast<char*>(map(std::size_t{entries} * buf_bytes));
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(out.ring);
  reg.ring_entries = entries;
  reg.bgid = static_cast<std::uint16_t>(bgid);
  const int r = out.ring == nullptr || out.base == nullptr
                    ? -ENOMEM
                    : io_uring_register_buf_ring(&ring, &reg, 0);
  if (r < 0) {
    iolab_free_buf_ring(out);
    return r;
  }
  io_uring_buf_ring_init(out.ring);
  for (unsigned i = 0; i < entries; ++i) {
    io_uring_buf_ring_add(out.ring, out.buffer(i), buf_bytes, static_cast<unsigned short>(i),
                          io_uring_buf_ring_mask(entries), static_cast<int>(i));
  }
  io_uring_buf_ring_advance(out.ring, static_cast<int>(entries));
  return 0;
}

}  // namespace iolab
