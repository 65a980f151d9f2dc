"""nbgrader's configuration for the scratchnet course (run every nbgrader command from this folder).

    nbgrader generate_assignment bptt       # source/bptt -> release/bptt, solutions and hidden tests removed
    nbgrader autograde bptt                 # submitted/<student>/bptt -> autograded/, scores in gradebook.db
    nbgrader generate_feedback bptt         # autograded/ -> feedback/ (HTML per student)

See notebooks/README.md for the whole release / collect / grade cycle.
"""
c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = "scratchnet"
#: what a student finds in place of each solution region
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
#: what a student finds in place of each written answer (its model answer and rubric removed)
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
#: a cell may run as long as the slowest training of train_your_own needs on one core (~15 s), with room
c.ExecutePreprocessor.timeout = 600
