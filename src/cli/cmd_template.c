#include "commands.h"
#include <stdio.h>
int cmd_template(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "shardlm template: not built yet\n"); return 1; }
