"""mlpower.sut_agent"""
