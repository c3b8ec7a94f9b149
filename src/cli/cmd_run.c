#include "commands.h"
#include <stdio.h>
int cmd_run(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "shardlm run: not built yet\n"); return 1; }
