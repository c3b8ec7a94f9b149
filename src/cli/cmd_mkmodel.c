#include "commands.h"
#include <stdio.h>
int cmd_mkmodel(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "shardlm mkmodel: not built yet\n"); return 1; }
