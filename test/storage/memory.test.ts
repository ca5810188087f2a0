// The in-memory storage passes the shared RaftStorage suite; reopening shares the same MemoryDisk.
import { MemoryRaftStorage } from '../../src/storage/memory.js';
import { runRaftStorageConformance } from './conformance.js';

runRaftStorageConformance('memory', async () => {
  let current = new MemoryRaftStorage();
  return {
    storage: current,
    reopen: async () => {
      await current.close();
      current = current.reopen();
      return current;
    },
    cleanup: () => current.close(),
  };
});
