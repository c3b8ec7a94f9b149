#include "commands.h"
#include <stdio.h>
int cmd_bench(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "shardlm bench: not built yet\n"); return 1; }
