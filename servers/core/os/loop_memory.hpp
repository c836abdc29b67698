// The memory server_pooled gives its loops and connections, by name: LoopMemory, one per event
// loop, and ClientMemory(LoopMemory&), one per connection (a ConnectionMemory for its
// Connection). Only servers/pooled/main.cpp includes this file. Labs 07 and 09 build
// server_pooled with the student's own loop_memory.hpp instead: the lab's exercise/ folder comes
// first on the include path, ahead of servers/core/os/, so its file of this name is the one found.
#pragma once

#include "pool.hpp"

namespace iolab {

using LoopMemory = BlockPool;      // size-class free lists of blocks, filled from operator new
using ClientMemory = PooledMemory;  // a request arena and input buffers from the loop's pool

}  // namespace iolab
