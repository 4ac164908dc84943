"""PlatformIO's runner for the on-target tests (`pio test -e emu_m4`): reads the lines the test
program prints through semihosting ("PASS name", "FAIL name: detail", then
"ON-TARGET TESTS: <n> passed, <m> failed") into test cases."""

from platformio.public import TestCase, TestRunnerBase, TestStatus


class CustomTestRunner(TestRunnerBase):
    def on_testing_line_output(self, line):
        super().on_testing_line_output(line)
        text = line.strip()
        if text.startswith(("PASS ", "FAIL ")):
            name, _, detail = text[5:].partition(": ")
            status = TestStatus.PASSED if text.startswith("PASS") else TestStatus.FAILED
            self.test_suite.add_case(TestCase(name=name, status=status, message=detail or None))
        elif text.startswith("ON-TARGET TESTS:"):
            self.test_suite.on_finish()
