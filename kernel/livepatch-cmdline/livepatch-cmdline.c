// SPDX-License-Identifier: GPL-2.0
/*
 * livepatch-cmdline: a minimal kernel livepatch used by livepatch's end-to-end test.
 *
 * It replaces cmdline_proc_show() (fs/proc/cmdline.c, what a read of /proc/cmdline runs) with a
 * version that prints a fixed marker before the real command line, so a test can tell from user
 * space alone whether the patched universe is in effect.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

/* The marker the test greps for; keep it in sync with scripts/test-kernel.sh. */
#define LIVEPATCH_CMDLINE_MARKER "livepatch-cmdline: patched"

/*
 * Same signature as the original. It prints only the marker: saved_command_line is not exported
 * to modules, and reaching it would need a klp relocation, which a hand-written module cannot
 * express without kpatch-build or klp-build.
 */
static int patched_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s\n", LIVEPATCH_CMDLINE_MARKER);
	return 0;
}

static struct klp_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = patched_cmdline_proc_show,
	},
	{}
};

/* A NULL name means vmlinux: the function lives in the kernel image, not in a module. */
static struct klp_object objs[] = {
	{
		.funcs = funcs,
	},
	{}
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int __init livepatch_cmdline_init(void)
{
	return klp_enable_patch(&patch);
}

/* Nothing to undo: by the time rmmod can run, the core has disabled and freed the patch. */
static void __exit livepatch_cmdline_exit(void)
{
}

module_init(livepatch_cmdline_init);
module_exit(livepatch_cmdline_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("livepatch end-to-end test: mark /proc/cmdline");
MODULE_INFO(livepatch, "Y");
