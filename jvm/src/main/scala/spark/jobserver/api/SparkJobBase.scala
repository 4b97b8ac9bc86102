package spark.jobserver.api

import com.typesafe.config.Config
import org.apache.spark.SparkContext
import org.scalactic._

trait ValidationProblem

/** The usual validation problem: a message. */
case class SingleProblem(problem: String) extends ValidationProblem

/**
 * spark-jobserver's Scala job: `validate` turns the config into the job's data (`Good`) or
 * rejects the request (`Bad`: 400 VALIDATION FAILED); `runJob` does the work.
 */
trait SparkJobBase {
  type C
  type JobData
  type JobOutput

  def runJob(sc: C, runtime: JobEnvironment, data: JobData): JobOutput

  def validate(sc: C, runtime: JobEnvironment, config: Config): JobData Or Every[ValidationProblem]
}

/** A Scala job that gets the context's SparkContext (a context of `DefaultSparkContextFactory`). */
trait SparkJob extends SparkJobBase {
  type C = SparkContext
}
