package spark.jobserver.bridge

import com.typesafe.config.Config
import org.scalactic.{Bad, Good}
import spark.jobserver.SparkSessionJob
import spark.jobserver.api.{JobEnvironment, SingleProblem, SparkJob, SparkJobBase}

/** spark-jobserver's Scala traits for `JobBridge`, which loads this class by name. */
class ScalaJobs extends ScalaJobSupport {
  def contextKind(jobClass: Class[_]): String =
    if (classOf[SparkSessionJob].isAssignableFrom(jobClass)) JobBridge.SESSION
    else if (classOf[SparkJob].isAssignableFrom(jobClass)) JobBridge.SPARK_CONTEXT
    else if (classOf[SparkJobBase].isAssignableFrom(jobClass)) "?"
    else ""

  def validate(job: AnyRef, context: AnyRef, runtime: JobEnvironment, config: Config): Verified = {
    val scalaJob = job.asInstanceOf[SparkJobBase]
    scalaJob.validate(context.asInstanceOf[scalaJob.C], runtime, config) match {
      case Good(data) => Verified.valid(data)
      case Bad(problems) =>
        val messages = problems.toVector.map {
          case SingleProblem(problem) => problem
          case other => String.valueOf(other)
        }
        Verified.invalid(messages.mkString("; "), "spark.jobserver.api.ValidationProblem", "")
    }
  }

  def runJob(job: AnyRef, context: AnyRef, runtime: JobEnvironment, data: AnyRef): AnyRef = {
    val scalaJob = job.asInstanceOf[SparkJobBase]
    scalaJob.runJob(context.asInstanceOf[scalaJob.C], runtime, data.asInstanceOf[scalaJob.JobData])
      .asInstanceOf[AnyRef]
  }
}
