"""PlatformIO's runner for the on-target tests (`pio test -e emu_m4`): runs the test program in
QEMU with semihosting, machine and instruction timing from the board table
(firmware/boards/boards.ini), and reads the lines it prints ("PASS name", "FAIL name: detail",
then "ON-TARGET TESTS: <n> passed, <m> failed") into test cases."""

import configparser
import os

from platformio.public import TestCase, TestRunnerBase, TestStatus


class CustomTestRunner(TestRunnerBase):
    def stage_testing(self):
        command = self.qemu_command()
        if command:
            # PlatformIO runs test_testing_command on the host and reads its output.
            section = f"env:{self.test_suite.env_name}"
            self.project_config.set(section, "test_testing_command", command)
        return super().stage_testing()

    def qemu_command(self):
        """The QEMU command line for this environment's board, [] for a real board."""
        env = self.test_suite.env_name
        pio_board = self.project_config.get(f"env:{env}", "board")
        project = os.path.dirname(self.project_config.path)
        path = os.path.join(project, "firmware", "boards", "boards.ini")
        table = configparser.ConfigParser()
        if not table.read(path):
            raise FileNotFoundError(f"board table {path} not found (pio test -e {env})")
        found = [table[s] for s in table.sections() if table[s].get("pio_board") == pio_board]
        if not found:
            raise KeyError(f"{path}: no section has pio_board = {pio_board} (pio test -e {env})")
        facts = found[0]
        if "qemu_machine" not in facts:
            return []
        build_dir = self.project_config.get("platformio", "build_dir")
        return [
            "qemu-system-arm",
            "-M",
            facts["qemu_machine"],
            "-icount",
            f"shift={facts['icount_shift']},align=off,sleep=off",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "null",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
            os.path.join(build_dir, env, "program.elf"),
        ]

    def on_testing_line_output(self, line):
        super().on_testing_line_output(line)
        text = line.strip()
        if text.startswith(("PASS ", "FAIL ")):
            name, _, detail = text[5:].partition(": ")
            status = TestStatus.PASSED if text.startswith("PASS") else TestStatus.FAILED
            self.test_suite.add_case(TestCase(name=name, status=status, message=detail or None))
        elif text.startswith("ON-TARGET TESTS:"):
            self.test_suite.on_finish()
