//! `help REPORT`: what each field of a report means, in Linux's terms and what it counts
//! on this kernel. One text per report; `help --markdown` puts them in docs/console.md.

/// The field descriptions of `topic` (a command name, or `/proc/NAME` for the file).
pub fn fields(topic: &str) -> Option<&'static str> {
    Some(match topic {
        "meminfo" | "/proc/meminfo" => MEMINFO,
        "free" => FREE,
        "vmstat" => VMSTAT_TOOL,
        "/proc/vmstat" => PROC_VMSTAT,
        "slabtop" => SLABTOP,
        "slabinfo" | "/proc/slabinfo" => SLABINFO,
        "zoneinfo" | "/proc/zoneinfo" => ZONEINFO,
        "buddyinfo" | "/proc/buddyinfo" => BUDDYINFO,
        "pagetypeinfo" | "/proc/pagetypeinfo" => PAGETYPEINFO,
        "vmallocinfo" | "/proc/vmallocinfo" => VMALLOCINFO,
        "interrupts" | "/proc/interrupts" => INTERRUPTS,
        "show_mem" => SHOW_MEM,
        _ => return None,
    })
}

/// Every topic with fields, in the order docs/console.md lists them.
pub const TOPICS: [&str; 12] = [
    "meminfo",
    "free",
    "vmstat",
    "/proc/vmstat",
    "slabtop",
    "slabinfo",
    "zoneinfo",
    "buddyinfo",
    "pagetypeinfo",
    "vmallocinfo",
    "interrupts",
    "show_mem",
];

const MEMINFO: &str = "\
MemTotal      RAM the page allocator manages: all of it less the kernel image, the page
              descriptors (mem_map) and firmware reservations
MemFree       pages on the buddy free lists (Linux's NR_FREE_PAGES); pages cached on
              the per-CPU lists count as allocated (zoneinfo shows them as pagesets)
MemAvailable  what can be allocated without trouble: MemFree less the high watermark
              (nothing here is reclaimable: no page cache, no swap)
Slab          pages held by the slab caches (kmalloc up to 8 KiB, kmem_cache_create)
SReclaimable  slab memory that could be reclaimed: always 0 here
SUnreclaim    slab memory that cannot be: all of Slab
KernelStack   the usable part of each CPU's kernel stack (guard pages excluded)
PageTables    pages of page tables (the kernel's vmalloc mappings)
VmallocTotal  size of the vmalloc address range
VmallocUsed   pages mapped by vmalloc areas
VmallocChunk  the largest free range of vmalloc addresses
CmaTotal      pages of the CMA area (only with cma= on the command line)
CmaFree       free pages of the CMA area";

const FREE: &str = "\
total       MemTotal of /proc/meminfo
used        total - free - buff/cache (procps' rule)
free        MemFree: the buddy free lists
shared      shared memory (tmpfs): always 0 here
buff/cache  page cache, buffers and reclaimable slab: always 0 here
available   MemAvailable: free less the high watermark
Swap        there is no swap: 0 0 0
Units: kB (-k, the default), MiB (-m, rounded down), or -h: three figures and a binary
suffix (Ki, Mi, Gi).";

const VMSTAT_TOOL: &str = "\
r      CPUs running: this one (vmstat itself) and any CPU not asleep in wfi
b      tasks blocked on I/O: no tasks here, 0
swpd   swap used: 0 (no swap)
free   MemFree in kB
buff   buffer cache in kB: 0 (no block layer)
cache  page cache in kB: 0
si so  swapped in / out per second: 0
bi bo  blocks read / written per second: 0
in     interrupts per second (all IRQs, every CPU)
cs     context switches per second: 0 (no scheduler)
us     user time, %: 0 (no user space)
sy     kernel time, %: the part of the online CPUs' time not asleep in wfi
id     idle time, %: the online CPUs' time asleep in wfi
wa st  waiting for I/O, stolen by a hypervisor: 0
The first line averages since boot; with DELAY each further line covers the last
DELAY seconds, COUNT lines in all (no COUNT: until Ctrl-C).";

const PROC_VMSTAT: &str = "\
nr_free_pages                pages on the buddy free lists (MemFree / 4)
nr_zone_reserved_highatomic  pages held in the HighAtomic reserve
nr_slab_reclaimable          0 (no reclaimable caches)
nr_slab_unreclaimable        pages of the slab caches
nr_page_table_pages          pages of page tables
nr_vmalloc                   pages mapped by vmalloc
nr_kernel_stack              kernel stacks in kB (as Linux counts it)
pgalloc_dma, pgalloc_normal  pages allocated from each zone since boot
pgfree                       pages freed since boot
pgmigrate_success / _fail    pages migrated by compaction and CMA, and moves refused
compact_migrate_scanned      pages the migration scanner looked at
compact_free_scanned         pages the free scanner looked at
compact_isolated             pages isolated for migration (and free targets)
compact_stall                direct compactions by allocations
compact_fail / _success      direct compactions that did not / did give the page";

const SLABTOP: &str = "\
Active / Total Objects  objects in use (per-CPU cached ones count as in use) / all slots
Active / Total Slabs    slabs with an object in use / all slabs
Active / Total Caches   caches with an object in use / all caches
Active / Total Size     bytes of the objects in use / of all slots (slot sizes)
Min / Avg / Max Object  slot sizes, metadata included
OBJS       all object slots of the cache
ACTIVE     slots in use
USE        ACTIVE / OBJS in %
OBJ SIZE   slot size in KiB, metadata included (slabinfo's objsize)
SLABS      slabs of the cache
OBJ/SLAB   slots per slab
CACHE SIZE the slabs' pages in KiB
NAME       the cache
Sorted by OBJS, largest first, as slabtop's default.";

const SLABINFO: &str = "\
active_objs   objects in use (per-CPU and shared cached ones count as in use, as Linux's SLAB)
num_objs      all object slots
objsize       slot size in bytes, debug metadata included
objperslab    slots per slab
pagesperslab  pages per slab
limit, batchcount  the per-CPU arrays' size and refill batch
sharedfactor  batches the node's shared array holds (8; 0: none, for debug caches and
              objects over a page)
active_slabs  slabs with an object in use
num_slabs     all slabs
sharedavail   objects in the shared array";

const ZONEINFO: &str = "\
pages free       the zone's buddy free lists
boost            watermark boost: 0 (not implemented)
min, low, high   the watermarks in pages: below min only GFP_ATOMIC and reserves;
                 low and high are where kswapd would wake and sleep in Linux
spanned          pages from the zone's first to its last frame
present          pages of RAM in that span
managed          pages the buddy allocator got (present less reservations)
cma              pages of the CMA area
protection       lowmem_reserve: pages kept from requests that could use a higher zone
nr_free_pages    as pages free
nr_zone_reserved_highatomic  the HighAtomic reserve
pagesets         per online CPU: count (pages cached), high (flush above), batch
start_pfn        the zone's first frame";

const BUDDYINFO: &str = "\
One line per zone: the number of free blocks of each order, order 0 (4 KiB) on the left
up to MAX_PAGE_ORDER (order 16, 256 MiB here; Linux's arm64 default stops at order 10).
A block of order n is 2^n contiguous pages; only the buddy free lists count (not the
per-CPU lists).";

const PAGETYPEINFO: &str = "\
Page block order / Pages per block  the unit of mobility grouping (order 9, 2 MiB)
Free pages count per migrate type   free blocks per order on each type's free lists:
                                    Unmovable, Movable, Reclaimable, HighAtomic,
                                    CMA (with cma=)
Number of blocks type               pageblocks of each migratetype";

const VMALLOCINFO: &str = "\
One line per area: start-end address, size in bytes including the guard page, the
caller that made it, pages=N (pages mapped), phys= (first page, for ioremap), the kind
(vmalloc, ioremap, vmap), huge=N (2 MiB blocks mapped).";

const INTERRUPTS: &str = "\
One row per interrupt: number, count per online CPU, controller (bcm2836-timer for the
per-CPU timers, ARMCTRL-level for the GPU's), hwirq, trigger, handler name; then the IPIs
by kind, spurious entries (nothing pending) per CPU, and Err: interrupts no handler took.";

const SHOW_MEM: &str = "\
Mem-Info:           the zone: free, min/low/high watermarks, reserved_highatomic,
                    present, managed, free_pcp (per-CPU lists), all in kB
lowmem_reserve[]    pages kept from requests of each higher zone
Normal: N*4kB (UM)  free blocks per order with the migratetypes that have them
                    (U unmovable, M movable, E reclaimable, H highatomic, C cma),
                    then the total
pages RAM           present pages; reserved: present - managed; cma reserved: the area";
